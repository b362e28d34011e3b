/**
 * The EDA Runner panel in the DOM: datasets, a run and its outputs, and a Run
 * button that waits out a refusal on the model's clock.
 *
 * JupyterLab's editor and output area are ESM and need a full application:
 * here they are small stand-ins with the same surface (the real ones are in
 * the browser tests). The REST calls are jest mocks.
 */
jest.mock('@jupyterlab/coreutils', () => ({ URLExt: { join: (...parts: string[]) => parts.join('/') } }));
jest.mock('@jupyterlab/services', () => ({ ServerConnection: {} }));
jest.mock('@jupyterlab/rendermime', () => ({}));
jest.mock('@jupyterlab/nbformat', () => ({}));
jest.mock('@jupyterlab/codeeditor', () => {
  const { Widget } = jest.requireActual('@lumino/widgets');
  class Model {
    source = '';
    sharedModel = {
      setSource: (s: string) => (this.source = s),
      getSource: () => this.source
    };
    constructor(readonly options: unknown) {}
    dispose(): void {}
  }
  class CodeEditorWrapper extends Widget {
    editor = { focus: jest.fn() };
    constructor(readonly options: unknown) {
      super();
    }
  }
  return { CodeEditor: { Model }, CodeEditorWrapper };
});
jest.mock('@jupyterlab/outputarea', () => {
  const { Widget } = jest.requireActual('@lumino/widgets');
  class OutputAreaModel {
    outputs: unknown[] = [];
    clear(): void {
      this.outputs = [];
    }
    add(output: unknown): void {
      this.outputs.push(output);
    }
  }
  class OutputArea extends Widget {
    model: OutputAreaModel;
    constructor(options: { model: OutputAreaModel }) {
      super();
      this.model = options.model;
    }
  }
  return { OutputArea, OutputAreaModel };
});
jest.mock('../src/api', () => ({
  ...jest.requireActual('../src/api'),
  listDatasets: jest.fn(),
  executeCustomCode: jest.fn()
}));

import { ApiError, executeCustomCode, listDatasets } from '../src/api';
import { ResourceModel } from '../src/model';
import { RunnerPanel } from '../src/runner';
import { IExecuteResult, IVerdict } from '../src/types';
import { attach, FakeClock, FakeServer, limited, makeModel, refreshed, text } from './widgets';

const list = listDatasets as jest.MockedFunction<typeof listDatasets>;
const execute = executeCustomCode as jest.MockedFunction<typeof executeCustomCode>;

let clock: FakeClock;
let server: FakeServer;
let model: ResourceModel;
let runner: RunnerPanel;

function result(overrides: Partial<IExecuteResult> = {}): IExecuteResult {
  return {
    status: 'ok',
    execution_count: 4,
    outputs: [{ output_type: 'stream', name: 'stdout', text: '(3, 2) 60\n' }],
    error: null,
    duration_seconds: 0.123,
    kernel_id: 'kb',
    ...overrides
  };
}

function refusal(retry: number): ApiError {
  return new ApiError(429, { error: 'rate_limited', reason: 'rate_limit', message: 'Rate limit reached.' }, retry);
}

async function open(): Promise<HTMLElement> {
  runner = attach(
    new RunnerPanel({
      model,
      rendermime: {} as any,
      editorServices: { factoryService: { newInlineEditor: jest.fn() } } as any
    })
  );
  await clock.advance(0); // the dataset list comes in
  return runner.node;
}

const button = () => runner.node.querySelector('[data-testid=eda-runner-run]') as HTMLButtonElement;
const outputs = () => (runner as any)._outputs.model.outputs as unknown[];

/** Press Run and let the (mocked) request answer. */
async function press(): Promise<void> {
  button().click();
  await clock.advance(0);
}

beforeEach(() => {
  clock = new FakeClock();
  server = new FakeServer();
  model = makeModel(server, clock);
  list.mockResolvedValue([{ id: 'demo', description: 'Three rows of demo sales' }]);
  execute.mockResolvedValue(result());
});

afterEach(() => {
  runner?.dispose();
  model.dispose();
  clock.uninstall();
  jest.clearAllMocks();
});

it('lists my datasets and describes the chosen one', async () => {
  const node = await open();
  const options = [...node.querySelectorAll('[data-testid=eda-runner-dataset] option')].map(o => o.textContent);
  expect(options).toEqual(['demo']);
  expect(node.textContent).toContain('Three rows of demo sales');
  expect(button().disabled).toBe(false);
  expect(button().textContent).toBe('Run');
});

it('says so when no dataset is assigned, and cannot run', async () => {
  list.mockResolvedValue([]);
  const node = await open();
  expect(text(node, 'eda-runner-status')).toBe('No dataset is assigned to you: ask an admin.');
  expect(button().disabled).toBe(true);
});

it('runs the editor code on the dataset and shows outputs and the time taken', async () => {
  await open();
  runner.editorModel.sharedModel.setSource('print(df.shape, df.sales.sum())');
  await press();
  expect(execute).toHaveBeenCalledWith('demo', 'print(df.shape, df.sales.sum())');
  expect(outputs()).toEqual([{ output_type: 'stream', name: 'stdout', text: '(3, 2) 60\n' }]);
  expect(text(runner.node, 'eda-runner-status')).toBe('Done in 0.12 s (execution 4)');
  expect(button().textContent).toBe('Run');
});

it('reports a sandbox stop as a verdict, like a notebook cell would', async () => {
  const seen: IVerdict[] = [];
  model.verdictReported.connect((_, v) => seen.push(v));
  execute.mockResolvedValue(
    result({ status: 'error', outputs: [], error: { ename: 'ExecutionTimeout', evalue: 'over 30 s', traceback: [] } })
  );
  await open();
  await press();
  expect(text(runner.node, 'eda-runner-status')).toBe('Finished with ExecutionTimeout after 0.12 s');
  expect(outputs()).toEqual([{ output_type: 'error', ename: 'ExecutionTimeout', evalue: 'over 30 s', traceback: [] }]);
  expect(seen.map(v => v.ename)).toEqual(['ExecutionTimeout']);
});

it('after a refusal, waits out the retry time on the model clock, then may run again', async () => {
  execute.mockRejectedValue(refusal(12));
  await open();
  await press();
  expect(text(runner.node, 'eda-runner-status')).toContain('Refused: Rate limit reached');
  expect(button().disabled).toBe(true);
  expect(button().textContent).toBe('Run (wait 12 s)');
  expect(button().dataset.limited).toBe('true');

  await clock.advance(5_000);
  expect(button().textContent).toBe('Run (wait 7 s)');
  await clock.advance(7_000);
  expect(button().disabled).toBe(false);
  expect(button().textContent).toBe('Run');
  expect(text(runner.node, 'eda-runner-status')).toBe('You can run again.');
  expect(execute).toHaveBeenCalledTimes(1);
});

it('does not send while the model says limited, and counts that wait down', async () => {
  server.current = limited(20);
  await open();
  await refreshed(model);
  expect(button().textContent).toBe('Run (wait 20 s)');
  await runner.run(); // e.g. Shift+Enter in the editor
  expect(execute).not.toHaveBeenCalled();
  expect(text(runner.node, 'eda-runner-status')).toBe('Limited: you can run again in 20 s.');
  await clock.advance(15_000);
  expect(button().textContent).toBe('Run (wait 5 s)');
});

it('says why a run could not be sent', async () => {
  execute.mockRejectedValue(new Error('Network down'));
  await open();
  await press();
  expect(text(runner.node, 'eda-runner-status')).toBe('Could not run: Network down');
  expect(button().disabled).toBe(false);
});
