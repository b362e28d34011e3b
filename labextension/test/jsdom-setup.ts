/**
 * What jsdom lacks and Lumino needs at import time (as JupyterLab's own jest
 * setup provides): `DragEvent`, which @lumino/dragdrop extends.
 */
if (typeof window !== 'undefined' && typeof (globalThis as any).DragEvent === 'undefined') {
  (globalThis as any).DragEvent = class DragEvent extends MouseEvent {
    readonly dataTransfer: null = null;
  };
}
