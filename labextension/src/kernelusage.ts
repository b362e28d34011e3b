/**
 * Memory and CPU of each kernel where analysts look: a notebook toolbar item for the
 * notebook's own kernel, and a section of JupyterLab's Running panel listing the
 * user's kernels (every user's, with the owner, for admins). Both read the shared
 * ResourceModel's system-stats snapshot: no polling of their own.
 */
import { IRunningSessions } from '@jupyterlab/running';
import { Session } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { shareLevel } from './dom';
import { fileName, sessionPathOf } from './sessions';
import { formatBytes, ResourceModel } from './model';
import { IKernelStats, Level } from './types';

const ORDER: Level[] = ['normal', 'medium', 'high', 'limited'];

/** What one kernel uses against its limits, in words and as a level. */
export interface IKernelUsage {
  memory: string;
  cpu: string;
  level: Level;
  /** Which limit stops the kernel, and at what. */
  title: string;
}

export function kernelUsage(kernel: IKernelStats): IKernelUsage {
  const { memory_bytes: memoryLimit, cpu_percent: cpuLimit } = kernel.limits;
  const memoryLevel = shareLevel(kernel.memory_bytes, memoryLimit);
  const cpuLevel = shareLevel(kernel.cpu_percent, cpuLimit);
  const level = ORDER[Math.max(ORDER.indexOf(memoryLevel), ORDER.indexOf(cpuLevel))];
  return {
    memory: `${formatBytes(kernel.memory_bytes)} / ${formatBytes(memoryLimit)}`,
    cpu: `${kernel.cpu_percent.toFixed(0)}% / ${cpuLimit.toFixed(0)}%`,
    level,
    title:
      `Memory ${formatBytes(kernel.memory_bytes)} of ${formatBytes(memoryLimit)}: ` +
      `at ${formatBytes(memoryLimit)} the kernel is stopped (MemoryLimitExceeded). ` +
      `CPU ${kernel.cpu_percent.toFixed(0)}% of its ${cpuLimit.toFixed(0)}% of a core: ` +
      'beyond it the kernel is slowed, not stopped.'
  };
}

/** The words a level adds for those who do not see the colour. */
function levelWords(level: Level): string {
  return level === 'normal' ? '' : level === 'medium' ? ' (rising)' : ' (near its limit)';
}

/** The notebook toolbar item: this notebook's kernel, memory / limit and CPU / limit. */
export class KernelUsageItem extends Widget {
  constructor(model: ResourceModel, kernelId: () => string | null | undefined) {
    super();
    this._model = model;
    this._kernelId = kernelId;
    this.addClass('eda-KernelUsage');
    this.node.dataset.testid = 'eda-kernel-usage';
    this.node.setAttribute('role', 'status');
    model.changed.connect(this.update, this);
    this.update();
  }

  dispose(): void {
    this._model.changed.disconnect(this.update, this);
    super.dispose();
  }

  /** Re-read the model (also when the notebook's kernel changes). */
  update(): void {
    const id = this._kernelId();
    const kernel = id ? this._model.stats?.kernels.find(k => k.kernel_id === id) : undefined;
    if (!kernel) {
      this.node.textContent = '';
      this.node.removeAttribute('data-level');
      this.node.title = '';
      return;
    }
    const usage = kernelUsage(kernel);
    this.node.textContent = `Mem ${usage.memory} · CPU ${usage.cpu}${levelWords(usage.level)}`;
    this.node.dataset.level = usage.level;
    this.node.title = usage.title;
  }

  private _model: ResourceModel;
  private _kernelId: () => string | null | undefined;
}

/**
 * A section of the Running panel: the kernels of the last system-stats snapshot, named by
 * their notebook (or console) where a session says so, each with its memory and CPU.
 */
export class KernelUsageSection implements IRunningSessions.IManager {
  readonly name = 'Kernel usage';
  readonly shutdownLabel = 'Shut Down Kernel';

  constructor(
    model: ResourceModel,
    sessions: Session.IManager,
    shutdown: (kernelId: string) => Promise<void>,
    icon: IRunningSessions.IRunningItem['icon']
  ) {
    this._model = model;
    this._sessions = sessions;
    this._shutdown = shutdown;
    this._icon = icon;
    model.changed.connect(() => this._changed.emit(undefined));
    sessions.runningChanged.connect(() => this._changed.emit(undefined));
  }

  get runningChanged(): ISignal<this, void> {
    return this._changed;
  }

  running(): IRunningSessions.IRunningItem[] {
    const stats = this._model.stats;
    if (!stats) {
      return [];
    }
    const me = this._model.status?.user;
    return stats.kernels.map(kernel => {
      const usage = kernelUsage(kernel);
      const path = sessionPathOf(this._sessions, kernel.kernel_id);
      const name =
        path !== null
          ? fileName(path)
          : (this._model.kernelLabel(kernel.kernel_id) ?? `kernel ${kernel.kernel_id.slice(0, 8)}`);
      const owner = kernel.user !== me ? `${kernel.user}: ` : '';
      return {
        className: `eda-RunningUsage eda-Level-${usage.level}`,
        icon: this._icon,
        label: () => `${owner}${name}`,
        labelTitle: () => `${owner}${path ?? kernel.kernel_id} (kernel ${kernel.kernel_id})\n${usage.title}`,
        detail: () => `${usage.memory} · ${usage.cpu}${levelWords(usage.level)}`,
        shutdown: () => void this._shutdown(kernel.kernel_id)
      };
    });
  }

  /** The caller's own kernels only (an admin's list holds everyone's). */
  shutdownAll(): void {
    const me = this._model.status?.user;
    for (const kernel of this._model.stats?.kernels ?? []) {
      if (kernel.user === me) {
        void this._shutdown(kernel.kernel_id);
      }
    }
  }

  refreshRunning(): void {
    void this._model.refresh();
  }

  private _model: ResourceModel;
  private _sessions: Session.IManager;
  private _shutdown: (kernelId: string) => Promise<void>;
  private _icon: IRunningSessions.IRunningItem['icon'];
  private _changed = new Signal<this, void>(this);
}
