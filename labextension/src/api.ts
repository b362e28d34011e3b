/**
 * Requests to the eda_gateway REST API, through JupyterLab's ServerConnection
 * (base URL, XSRF cookie and auth headers come with it).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IDataset, IExecuteResult } from './types';

export const API_PREFIX = 'advanced-eda/api';

/** An error answer: `{"error": CODE, "message": TEXT, ...}` plus HTTP facts. */
export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly body: { error?: string; message?: string; [key: string]: unknown },
    readonly retryAfterSeconds: number | null
  ) {
    super(body.message || body.error || `HTTP ${httpStatus}`);
    this.name = 'ApiError';
  }

  get code(): string {
    return this.body.error ?? `http_${this.httpStatus}`;
  }
}

export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PREFIX, path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: 'bad_response', message: `Not JSON (HTTP ${response.status})` };
  }
  if (!response.ok) {
    const header = response.headers.get('Retry-After');
    const retry =
      header !== null && !isNaN(Number(header))
        ? Number(header)
        : typeof body?.retry_after_seconds === 'number'
          ? body.retry_after_seconds
          : null;
    throw new ApiError(response.status, body ?? {}, retry);
  }
  return body as T;
}

export function fetchJSON<T>(path: string): Promise<T> {
  return requestAPI<T>(path);
}

export async function listDatasets(): Promise<IDataset[]> {
  const body = await requestAPI<{ datasets: IDataset[] }>('datasets');
  return body.datasets ?? [];
}

export function executeCustomCode(sourceId: string, code: string): Promise<IExecuteResult> {
  return requestAPI<IExecuteResult>(`execute-custom-code/${encodeURIComponent(sourceId)}`, {
    method: 'POST',
    body: JSON.stringify({ code }),
    headers: { 'Content-Type': 'application/json' }
  });
}
