/** Talking to the server extension under `{baseUrl}mistral-magic/` (token and XSRF header
 * are added by ServerConnection). */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { SSEParser } from './sse';
import { IChatRequest, IStreamHandlers } from './types';

const NAMESPACE = 'mistral-magic';

function url(...parts: string[]): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, NAMESPACE, ...parts);
}

/** A one-paragraph message for a failed HTTP call. */
async function problem(response: Response): Promise<string> {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = body.message || detail;
  } catch {
    // not JSON
  }
  if (response.status === 403) {
    return `The Jupyter server refused the request (403: ${detail}). Reload the page to log in again.`;
  }
  if (response.status === 404) {
    return (
      'The mistral-magic server extension is not running (404). Check that ' +
      '`jupyter server extension list` shows mistral_magic enabled, then restart Jupyter.'
    );
  }
  return `The mistral-magic server extension answered ${response.status}: ${detail}`;
}

export async function requestAPI<T>(
  path: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url(path), init, settings);
  } catch (error) {
    throw new Error(`Could not reach the Jupyter server (${error}).`);
  }
  if (!response.ok) {
    throw new Error(await problem(response));
  }
  if (response.status === 204) {
    return undefined as unknown as T;
  }
  return (await response.json()) as T;
}

/** POST the question and dispatch the server-sent events as they arrive. Resolves when the
 * stream ends; rejects with AbortError on Stop. */
export async function streamChat(
  body: IChatRequest,
  handlers: IStreamHandlers,
  signal: AbortSignal
): Promise<void> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(
    url('chat'),
    {
      method: 'POST',
      body: JSON.stringify(body),
      headers: {
        Accept: 'text/event-stream',
        'Content-Type': 'application/json'
      },
      signal
    },
    settings
  );
  if (!response.ok || !response.body) {
    throw new Error(await problem(response));
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    for (const { event, data } of parser.feed(
      decoder.decode(value, { stream: true })
    )) {
      switch (event) {
        case 'context':
          handlers.context?.(data);
          break;
        case 'delta':
          handlers.delta?.(data.text);
          break;
        case 'thinking':
          handlers.thinking?.(data.text);
          break;
        case 'notice':
          handlers.notice?.(data);
          break;
        case 'tool_call':
          handlers.toolCall?.(data);
          break;
        case 'agent':
          handlers.agent?.(data);
          break;
        case 'tool_result':
          handlers.toolResult?.(data);
          break;
        case 'usage':
          handlers.usage?.(data);
          break;
        case 'confirm':
          handlers.confirm?.(data);
          break;
        case 'provenance':
          handlers.provenance?.(data);
          break;
        case 'error':
          handlers.error?.(data);
          break;
        case 'done':
          handlers.done?.(data);
          break;
      }
    }
  }
}

export function cancelChat(requestId: string): Promise<unknown> {
  return requestAPI('chat/cancel', {
    method: 'POST',
    body: JSON.stringify({ request_id: requestId })
  }).catch(() => undefined);
}
