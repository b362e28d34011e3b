/**
 * A short welcome in JupyterLab's launcher, naming the user's limits (a managed deployment
 * tells people the rules before their first refusal). Its card opens the Resource Monitor;
 * its words follow the shared model.
 */
import { formatBytes, formatDuration, ResourceModel } from './model';

/** The welcome card's words, from the model's last snapshot. */
export function welcomeLabel(model: ResourceModel): string {
  const status = model.status;
  if (!status) {
    return 'Your limits (loading…)';
  }
  const {
    max_executions_per_minute: perWindow,
    window_seconds: window,
    max_concurrent_executions: atOnce
  } = status.limits;
  const parts = [`${perWindow} runs per ${formatDuration(window)}`, `${atOnce} at once`];
  const kernel = model.stats?.kernels.find(k => k.user === status.user);
  if (kernel) {
    parts.push(
      `${formatBytes(kernel.limits.memory_bytes)} and ${formatDuration(kernel.limits.execution_seconds)} per run`
    );
  }
  return `Welcome, ${status.user}. Your limits: ${parts.join(' · ')}`;
}
