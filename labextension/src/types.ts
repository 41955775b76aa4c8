/** Shapes exchanged with the server extension (mistral_magic/server). */

export interface IChip {
  id: string;
  label: string;
  kind: string;
  items: string[];
  state: 'included' | 'partial' | 'omitted';
  /** e.g. "first 4,000 of 150,000 characters" for a long selection */
  note?: string;
}

export interface IServerConfig {
  model: string;
  server?: string;
  dialect?: string;
  api_key_configured: boolean;
  error?: string;
  /** False: tools are off on this server (c.MistralServer.tools). */
  tools?: boolean;
}

export interface IUsage {
  model: string;
  prompt_tokens?: number;
  completion_tokens?: number;
  cost_text: string;
}

export interface IHistoryEntry {
  role: 'user' | 'assistant';
  text: string;
  chips?: string[];
  notebook?: string;
  model?: string;
  usage?: IUsage;
  error?: string;
  stopped?: boolean;
  /** A reasoning model's thinking, shown collapsed under the answer. */
  thinking?: string;
  /** The tool calls of the answer, as they were shown. */
  tools?: IToolResult[];
  /** The reply's provenance: what an Insert puts in the new cell's `metadata.mistral`. */
  provenance?: Record<string, unknown>;
  /** An agent task's last totals, under its request id. */
  agent?: IAgentProgress & { request_id: string };
}

/** A `tool_call` event: a call for the browser to run (mistral_magic/server/relay.py). */
export interface IToolCall {
  request_id: string;
  call_id: string;
  name: string;
  arguments: Record<string, unknown>;
  signature: string;
  round: number;
  /** Which runner runs it (tools.ts): `kernel` for the notebook's kernel. */
  runner: string;
  timeout_ms: number;
  max_chars: number;
}

/** A `tool_result` event: a finished call, as the model reads it. */
export interface IToolResult {
  call_id?: string;
  name: string;
  signature: string;
  status: 'ok' | 'error' | 'declined' | 'skipped' | 'running';
  result: string;
  seconds?: number;
  round?: number;
}

/** What the cost guard says before a costly question (`Mistral.confirm_above`). */
export interface ICostCheck {
  reason: string;
  summary: string;
  worst_case_text: string;
}

export interface IVariableItem {
  kind: string;
  key: string;
  label: string;
  text: string;
}

/** The body of `POST chat` and `POST context`. */
export interface IChatRequest {
  prompt: string;
  /** What the user asked for: the server words explain and fix itself. */
  kind?: 'ask' | 'explain' | 'fix';
  request_id?: string;
  notebook?: { cells: any[] };
  notebook_path?: string;
  active_cell?: number | null;
  selection?: string;
  /** the selection's whole length (`selection` may be cut) */
  selection_chars?: number;
  error_cell?: number | null;
  sources: string[];
  variables?: IVariableItem[];
  exclude?: string[];
  model?: string | null;
  temperature?: number | null;
  context_budget?: number | null;
  /** The tools of the notebook's kernel (wire `tools` entries); absent: no tools. */
  tools?: any[];
  /** the user confirmed this question's cost after a `confirm` event */
  confirmed?: boolean;
  /** `agent`: Mistral carries out the task on the notebook (issue #14). */
  mode?: 'ask' | 'agent';
}

/** An `agent` event: the running totals of an agent task. */
export interface IAgentProgress {
  step: number;
  max_steps: number;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number | null;
  cost_text: string;
  max_cost_text: string;
  seconds: number;
  max_seconds: number;
}

export interface IStreamHandlers {
  context?: (data: {
    chips: IChip[];
    model: string;
    prompt_tokens: number;
    note: string;
    /** the question as provenance records it (redacted, short) */
    question?: string;
  }) => void;
  delta?: (text: string) => void;
  /** A reasoning model's thinking, apart from the answer's text. */
  thinking?: (text: string) => void;
  /** What the client waits for, or (kind `info`) what the user should know. */
  notice?: (data: { message: string; kind: string }) => void;
  toolCall?: (call: IToolCall) => void;
  toolResult?: (result: IToolResult) => void;
  agent?: (progress: IAgentProgress) => void;
  usage?: (usage: IUsage) => void;
  /** Above `Mistral.confirm_above`: nothing was sent; ask, then send again confirmed. */
  confirm?: (check: ICostCheck) => void;
  provenance?: (record: Record<string, unknown>) => void;
  error?: (data: { message: string; type: string; partial: boolean }) => void;
  done?: (data: { finish_reason: string | null }) => void;
}
