"""Kernel iopub messages -> nbformat v4 outputs, cut at a size limit with a clear marker.

What a notebook would store for the cell: consecutive stream text of one name is
merged, ``clear_output`` (also with ``wait=True``) and ``update_display_data``
behave as in JupyterLab. Past ``max_bytes`` further output is dropped and a
stderr stream says how much; the first error is always kept (shortened), because
it is what the caller needs most.

The kernel is untrusted: every step costs time linear in what it sends (no
re-serialising or re-copying what was kept), so a flood cannot stall the server.
"""

from __future__ import annotations

import json

OUTPUT_MSG_TYPES = frozenset(
    {"stream", "display_data", "execute_result", "error", "update_display_data", "clear_output"}
)


def _size(obj) -> int:
    return len(json.dumps(obj, ensure_ascii=False).encode("utf-8"))


def _cut_text(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[: max(max_bytes, 0)].decode("utf-8", "ignore")


MAX_ENAME_BYTES = 1024


def _display_id(content: dict) -> str | None:
    transient = content.get("transient")
    display_id = transient.get("display_id") if isinstance(transient, dict) else None
    return display_id if isinstance(display_id, str) else None


class OutputCollector:
    """Accumulates the outputs of one execution."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.outputs: list[dict] = []
        self.size = 0
        self.dropped_bytes = 0
        self._clear_pending = False
        self._display_ids: dict[str, list[dict]] = {}
        self._data_sizes: dict[int, int] = {}  # id(displayed output) -> size of its data + metadata
        self._stream_chunks: dict[int, list[str]] = {}  # id(stream output) -> its text, in pieces
        self._has_error = False

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def add(self, msg_type: str, content: dict) -> None:
        if not isinstance(content, dict):
            return
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self._clear()
            return
        if msg_type == "update_display_data":
            self._update_display(content)
            return
        if self._clear_pending:
            self._clear()
        if msg_type == "stream":
            self._add_stream(content.get("name", "stdout"), str(content.get("text", "")))
        elif msg_type == "error":
            self._add_error(content)
        elif msg_type in ("display_data", "execute_result"):
            self._add_rich(msg_type, content)

    def result(self) -> list[dict]:
        """The outputs, with the truncation marker last if anything was dropped."""
        for output in self.outputs:
            chunks = self._stream_chunks.get(id(output))
            if chunks is not None and len(chunks) > 1:
                chunks[:] = ["".join(chunks)]
                output["text"] = chunks[0]
        if not self.truncated:
            return list(self.outputs)
        marker = (
            f"\n[eda_gateway: output truncated: {self.dropped_bytes} bytes over the "
            f"{self.max_bytes}-byte limit were dropped]\n"
        )
        return [*self.outputs, {"output_type": "stream", "name": "stderr", "text": marker}]

    # --- kinds of output -----------------------------------------------------

    def _room(self) -> int:
        return self.max_bytes - self.size

    def _add_stream(self, name: str, text: str) -> None:
        if not text:
            return
        encoded = len(text.encode("utf-8"))
        room = self._room()
        kept = text if encoded <= room else _cut_text(text, room)
        kept_bytes = encoded if kept is text else len(kept.encode("utf-8"))
        self.dropped_bytes += encoded - kept_bytes
        if not kept:
            return
        self.size += kept_bytes
        last = self.outputs[-1] if self.outputs else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            self._stream_chunks[id(last)].append(kept)  # joined once, in result()
        else:
            output = {"output_type": "stream", "name": name, "text": kept}
            self._stream_chunks[id(output)] = [kept]
            self.outputs.append(output)

    def _add_rich(self, msg_type: str, content: dict) -> None:
        output = {"output_type": msg_type, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
        if msg_type == "execute_result":
            output["execution_count"] = content.get("execution_count")
        size = _size(output)
        if size > self._room():
            self.dropped_bytes += size
            return
        self.size += size
        self.outputs.append(output)
        display_id = _display_id(content)
        if display_id:
            self._display_ids.setdefault(display_id, []).append(output)
            self._data_sizes[id(output)] = _size({"data": output["data"], "metadata": output["metadata"]})

    def _add_error(self, content: dict) -> None:
        # The first error is always kept, shortened to the limit; later ones (a kernel
        # sends one per execution) only if they fit.
        evalue = str(content.get("evalue", ""))
        ename = _cut_text(str(content.get("ename", "")), MAX_ENAME_BYTES)
        budget = self.max_bytes if not self._has_error else self._room()
        if len(evalue.encode("utf-8")) > budget // 2:  # the other half for the traceback
            self.dropped_bytes += len(evalue.encode("utf-8")) - budget // 2
            evalue = _cut_text(evalue, budget // 2)
        raw = content.get("traceback", [])
        lines = [str(line) for line in raw] if isinstance(raw, list) else []
        kept: list[str] = []
        used = 2 + _size(evalue) + _size(ename) + 64  # "[]", the rest of the output
        for line in reversed(lines):  # the innermost frames, at the end, say the most
            cost = _size(line) + 1
            if used + cost > budget:
                self.dropped_bytes += sum(len(x.encode("utf-8")) for x in lines[: len(lines) - len(kept)])
                break
            used += cost
            kept.append(line)
        kept.reverse()
        output = {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": kept}
        size = _size(output)
        if self._has_error and size > self._room():
            self.dropped_bytes += size
            return
        self._has_error = True
        self.size += size
        self.outputs.append(output)

    def _update_display(self, content: dict) -> None:
        targets = self._display_ids.get(_display_id(content))
        if not targets:
            return
        new = {"data": content.get("data", {}), "metadata": content.get("metadata", {})}
        new_size = _size(new)  # once per update, whatever the number of outputs it updates
        for output in targets:
            growth = new_size - self._data_sizes[id(output)]
            if growth > self._room():
                self.dropped_bytes += growth
                continue
            self.size += growth
            output.update(new)
            self._data_sizes[id(output)] = new_size

    def _clear(self) -> None:
        self.outputs.clear()
        self._display_ids.clear()
        self._data_sizes.clear()
        self._stream_chunks.clear()
        self._has_error = False
        self.size = 0
        self._clear_pending = False
