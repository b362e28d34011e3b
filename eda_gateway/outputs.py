"""Kernel iopub messages -> nbformat v4 outputs, cut at a size limit with a clear marker.

What a notebook would store for the cell: consecutive stream text of one name is
merged, ``clear_output`` (also with ``wait=True``) and ``update_display_data``
behave as in JupyterLab. Past ``max_bytes`` further output is dropped and a
stderr stream says how much; errors are always kept (shortened), because they
are what the caller needs most.
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


class OutputCollector:
    """Accumulates the outputs of one execution."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.outputs: list[dict] = []
        self.size = 0
        self.dropped_bytes = 0
        self._clear_pending = False
        self._display_ids: dict[str, list[dict]] = {}

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def add(self, msg_type: str, content: dict) -> None:
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
        room = self._room()
        kept = text if len(text.encode("utf-8")) <= room else _cut_text(text, room)
        self.dropped_bytes += len(text.encode("utf-8")) - len(kept.encode("utf-8"))
        if not kept:
            return
        self.size += len(kept.encode("utf-8"))
        last = self.outputs[-1] if self.outputs else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += kept
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": kept})

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
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            self._display_ids.setdefault(display_id, []).append(output)

    def _add_error(self, content: dict) -> None:
        # Always kept, but a huge message or traceback is shortened to the limit.
        evalue = str(content.get("evalue", ""))
        traceback = [str(line) for line in content.get("traceback", [])]
        if len(evalue.encode("utf-8")) > self.max_bytes:
            self.dropped_bytes += len(evalue.encode("utf-8")) - self.max_bytes
            evalue = _cut_text(evalue, self.max_bytes)
        while traceback and _size(traceback) > self.max_bytes:
            self.dropped_bytes += len(traceback[0].encode("utf-8"))
            traceback.pop(0)  # the innermost frames, at the end, say the most
        output = {"output_type": "error", "ename": str(content.get("ename", "")), "evalue": evalue, "traceback": traceback}
        self.size += _size(output)
        self.outputs.append(output)

    def _update_display(self, content: dict) -> None:
        display_id = (content.get("transient") or {}).get("display_id")
        for output in self._display_ids.get(display_id, []):
            new = {"data": content.get("data", {}), "metadata": content.get("metadata", {})}
            growth = _size(new) - _size({"data": output["data"], "metadata": output["metadata"]})
            if growth > self._room():
                self.dropped_bytes += growth
                continue
            self.size += growth
            output.update(new)

    def _clear(self) -> None:
        self.outputs.clear()
        self._display_ids.clear()
        self.size = 0
        self._clear_pending = False
