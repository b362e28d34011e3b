/**
 * Each kernel's memory and CPU against its limits, in words and as a level.
 */
import { kernelUsage } from '../src/kernelusage';
import { IKernelStats } from '../src/types';

const MIB = 1024 * 1024;

function kernel(memoryMiB: number, cpu: number): IKernelStats {
  return {
    kernel_id: 'k1',
    user: 'alice',
    pid: 1,
    memory_bytes: memoryMiB * MIB,
    cpu_percent: cpu,
    execution_state: 'idle',
    limits: { memory_bytes: 512 * MIB, cpu_percent: 50, execution_seconds: 30 }
  } as IKernelStats;
}

it('says memory and CPU against their limits, and which limit stops the kernel', () => {
  const usage = kernelUsage(kernel(120, 10));
  expect(usage.memory).toBe('120 MiB / 512 MiB');
  expect(usage.cpu).toBe('10% / 50%');
  expect(usage.level).toBe('normal');
  expect(usage.title).toContain('at 512 MiB the kernel is stopped (MemoryLimitExceeded)');
});

it('takes the level of whichever of memory and CPU is nearer its limit', () => {
  expect(kernelUsage(kernel(300, 5)).level).toBe('medium');
  expect(kernelUsage(kernel(100, 45)).level).toBe('high');
  expect(kernelUsage(kernel(10, 1)).level).toBe('normal');
});
