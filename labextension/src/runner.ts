/**
 * EDA Runner: run code (e.g. written by an LLM assistant) on one of my
 * datasets through `execute-custom-code`, under the same budget as notebooks.
 */
import { CodeEditor, CodeEditorWrapper, IEditorServices } from '@jupyterlab/codeeditor';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import * as nbformat from '@jupyterlab/nbformat';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';

import { ApiError, executeCustomCode, listDatasets } from './api';
import { h } from './dom';
import { formatDuration, ResourceModel } from './model';
import { ResourceMonitor } from './monitor';
import { limitWords } from './refusal';
import { IDataset, IRateLimited, VERDICT_NAMES } from './types';

export interface IRunnerOptions {
  model: ResourceModel;
  rendermime: IRenderMimeRegistry;
  editorServices: IEditorServices;
}

/** Numbers the panels' element ids, so two runners' labels stay distinct. */
let runnerCount = 0;

export class RunnerPanel extends Panel {
  constructor(options: IRunnerOptions) {
    super();
    this._model = options.model;
    this.addClass('eda-Runner');
    this.node.setAttribute('data-testid', 'eda-runner');

    this._monitor = new ResourceMonitor({ model: this._model, compact: true });

    this._select = h('select', {
      class: 'eda-Select',
      'data-testid': 'eda-runner-dataset',
      id: `eda-runner-dataset-${runnerCount++}`
    });
    this._select.addEventListener('change', () => this._updateButton());
    this._run = h(
      'button',
      { class: 'eda-Button eda-Button-primary', type: 'button', 'data-testid': 'eda-runner-run' },
      'Run'
    );
    this._run.addEventListener('click', () => void this.run());
    this._status = h('div', { class: 'eda-Runner-status', 'data-testid': 'eda-runner-status', role: 'status' });
    this._description = h('div', { class: 'eda-Runner-description' });
    const bar = new Widget({
      node: h(
        'div',
        { class: 'eda-Runner-toolbar' },
        h('label', { for: this._select.id }, 'Dataset'),
        this._select,
        this._run,
        h('span', { class: 'eda-Runner-hint' }, 'Shift+Enter runs')
      )
    });
    const info = new Widget({ node: h('div', {}, this._description, this._status) });

    this._editorModel = new CodeEditor.Model({ mimeType: 'text/x-ipython' });
    this._editorModel.sharedModel.setSource(
      '# Your dataset is available to this code; see docs/ui.md.\nprint("hello from the EDA runner")\n'
    );
    this._editor = new CodeEditorWrapper({
      factory: options.editorServices.factoryService.newInlineEditor,
      model: this._editorModel,
      editorOptions: { config: { lineNumbers: true } }
    });
    this._editor.addClass('eda-Runner-editor');
    this._editor.node.setAttribute('data-testid', 'eda-runner-editor');
    this._editor.node.addEventListener(
      'keydown',
      (event: KeyboardEvent) => {
        if (event.key === 'Enter' && (event.shiftKey || event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          event.stopPropagation();
          void this.run();
        }
      },
      true
    );

    this._outputs = new OutputArea({
      model: new OutputAreaModel({ trusted: false }),
      rendermime: options.rendermime
    });
    this._outputs.addClass('eda-Runner-outputs');
    this._outputs.node.setAttribute('data-testid', 'eda-runner-outputs');

    this.addWidget(this._monitor);
    this.addWidget(bar);
    this.addWidget(info);
    this.addWidget(this._editor);
    this.addWidget(this._outputs);

    this._model.changed.connect(this._updateButton, this);
    void this.loadDatasets();
  }

  get editorModel(): CodeEditor.IModel {
    return this._editorModel;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearInterval(this._ticker);
    this._model.changed.disconnect(this._updateButton, this);
    this._editorModel.dispose();
    super.dispose();
  }

  async loadDatasets(): Promise<void> {
    try {
      this._datasets = await listDatasets();
    } catch (error) {
      this._datasets = [];
      this._setStatus(`Could not list your datasets: ${(error as Error).message}`, 'error');
    }
    const previous = this._select.value;
    this._select.replaceChildren(...this._datasets.map(d => h('option', { value: d.id }, d.id)));
    if (this._datasets.some(d => d.id === previous)) {
      this._select.value = previous;
    }
    if (!this._datasets.length && !this._status.textContent) {
      this._setStatus('No dataset is assigned to you: ask an admin.', 'error');
    }
    this._updateButton();
  }

  /** Send the editor's code; refuses locally while the model says "limited". */
  async run(): Promise<void> {
    const source = this._select.value;
    if (this._running || !source) {
      return;
    }
    const wait = this._waitSeconds();
    if (wait !== null) {
      this._setStatus(this._limitedText(wait), 'limited');
      return;
    }
    this._running = true;
    this._updateButton();
    this._setStatus(`Running on ${source}…`, 'running');
    this._model.refreshSoon();
    try {
      const result = await executeCustomCode(source, this._editorModel.sharedModel.getSource());
      this._model.labelKernel(result.kernel_id, `EDA Runner: ${source}`); // the monitor's name for it
      this._showOutputs(result.outputs, result.error);
      this._setStatus(
        result.status === 'ok'
          ? `Done in ${result.duration_seconds.toFixed(2)} s (execution ${result.execution_count ?? '-'})`
          : `Finished with ${result.error?.ename ?? 'an error'} after ${result.duration_seconds.toFixed(2)} s`,
        result.status === 'ok' ? 'ok' : 'error'
      );
      if (result.error && VERDICT_NAMES.has(result.error.ename)) {
        // the sandbox stopped it: notify like a notebook cell would
        this._model.reportVerdict({
          ename: result.error.ename,
          evalue: result.error.evalue,
          kernelId: result.kernel_id,
          key: `api:${result.kernel_id}:${result.execution_count}:${Date.now()}`
        });
      }
    } catch (error) {
      if (error instanceof ApiError && error.httpStatus === 429) {
        // Retry-After (whole seconds) or the body's retry_after_seconds: fields, never the message's words
        const retry = Math.ceil(Math.max(1, error.retryAfterSeconds ?? 1));
        this._retryUntil = this._model.now() + retry * 1000;
        const body = error.body as Partial<IRateLimited>;
        const which = limitWords(body.reason, this._model.status?.limits ?? null);
        // seconds, like the Run button's "wait N s"
        const why = which === null ? error.message : `${which}.`;
        this._setStatus(`Refused: ${why} Retry in ${retry} s.`, 'limited');
      } else {
        this._setStatus(`Could not run: ${(error as Error).message}`, 'error');
      }
    } finally {
      this._running = false;
      this._updateButton();
      this._model.refreshSoon();
    }
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._ticker = setInterval(() => this._updateButton(), 1000);
  }

  protected onBeforeDetach(msg: Message): void {
    clearInterval(this._ticker);
    super.onBeforeDetach(msg);
  }

  protected onActivateRequest(msg: Message): void {
    this._editor.editor.focus();
  }

  private _showOutputs(
    outputs: nbformat.IOutput[],
    error: { ename: string; evalue: string; traceback: string[] } | null
  ): void {
    const model = this._outputs.model;
    model.clear();
    for (const output of outputs) {
      model.add(output);
    }
    if (error && !outputs.some(o => o.output_type === 'error')) {
      model.add({ output_type: 'error', ...error });
    }
  }

  /** Seconds to wait before running, or null when Run may be pressed. */
  private _waitSeconds(): number | null {
    const local = Math.max(0, (this._retryUntil - this._model.now()) / 1000);
    if (local > 0) {
      return local;
    }
    return this._model.isLimited() ? this._model.retryIn() : null;
  }

  private _limitedText(wait: number): string {
    return wait > 0
      ? `Limited: you can run again in ${formatDuration(Math.ceil(wait))}.`
      : 'Limited: wait for a running execution to finish.';
  }

  private _updateButton(): void {
    const wait = this._waitSeconds();
    const source = this._select.value;
    this._run.disabled = this._running || wait !== null || !source;
    this._run.textContent = this._running
      ? 'Running…'
      : wait !== null
        ? wait > 0
          ? `Run (wait ${Math.ceil(wait)} s)`
          : 'Run (limited)'
        : 'Run';
    this._run.dataset.limited = String(wait !== null);
    const dataset = this._datasets.find(d => d.id === source);
    this._description.textContent = dataset?.description ?? '';
    if (wait === null && this._statusKind === 'limited') {
      this._setStatus('You can run again.', 'ok');
    }
  }

  private _setStatus(text: string, kind: string): void {
    this._status.textContent = text;
    this._status.dataset.kind = kind;
    this._statusKind = kind;
  }

  private _model: ResourceModel;
  private _monitor: ResourceMonitor;
  private _select: HTMLSelectElement;
  private _run: HTMLButtonElement;
  private _status: HTMLElement;
  private _statusKind = '';
  private _description: HTMLElement;
  private _editorModel: CodeEditor.Model;
  private _editor: CodeEditorWrapper;
  private _outputs: OutputArea;
  private _datasets: IDataset[] = [];
  private _running = false;
  private _retryUntil = 0;
  private _ticker: ReturnType<typeof setInterval> | undefined = undefined;
}
