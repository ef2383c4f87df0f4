// Types for fusebox-client (index.js). Written by hand; test/types.test.js checks
// that every export of index.js is declared here and nothing else is.
import { EventEmitter } from 'node:events';

/** The package's version. */
export declare const VERSION: string;

/** Why a breaker (or a budget) refused a call. */
export type RefusalReason = 'open' | 'concurrency' | 'rate' | 'tokens';

/** A breaker's state, as the sidecar reports it. */
export type BreakerState = 'closed' | 'open' | 'half_open' | 'forced_open' | 'disabled' | 'metrics_only';

/** A breaker a route passed over, and why. */
export interface SkippedBreaker {
  breaker: string;
  state: BreakerState;
  retry_in_ms: number | null;
  reason: RefusalReason;
}

/** The breaker refused the call; do not make it. */
export declare class BreakerOpen extends Error {
  constructor(breaker: string, state: string, retryInMs: number | null, skipped?: SkippedBreaker[], reason?: RefusalReason | null);
  readonly breaker: string;
  readonly state: string;
  /** When it may admit again; null when unknown (a breaker forced open). */
  readonly retryInMs: number | null;
  readonly skipped: SkippedBreaker[];
  readonly reason: RefusalReason | null;
}

/** No breaker of a chain could take the call. */
export declare class ChainExhausted extends BreakerOpen {
  constructor(chain: string, skipped: SkippedBreaker[]);
  readonly chain: string;
}

/** The sidecar could not be reached, or did not answer in time (with `onUnavailable: 'raise'`). */
/** A strict `fetcher` refused a request whose host maps to no breaker. */
export declare class UnroutedRequest extends Error {
  host: string;
  constructor(host: string);
}

/** The providers' public API hosts, and Ollama's default local port. */
export declare const DEFAULT_ROUTES: Readonly<Record<string, string>>;
/** The breaker for `url`: the longest matching `host[:port][/path-prefix]` key of `routes`, or null. */
export declare function breakerFor(routes: Record<string, string>, url: URL): string | null;

export declare class SidecarUnavailable extends Error {
  constructor(message: string);
}

/** The sidecar answered with an error. */
export declare class ProtocolError extends Error {
  constructor(code: string, message: string);
  readonly code: string;
}

/** The fields of a report (docs/protocol.md). One of outcome, status or error_kind is needed; success is assumed. */
export interface ReportFields {
  outcome?: 'success' | 'failure' | 'timeout' | 'ignored' | 'cancelled';
  status?: number;
  error_kind?: 'timeout' | 'connection';
  latency_ms?: number;
  error?: string;
  retry_after_ms?: number;
  tokens_used?: number;
  /** Time to the first byte of a streamed answer (fusebox_time_to_first_byte_seconds). */
  ttfb_ms?: number;
}

/** Milliseconds from `retry-after-ms`, or `Retry-After` as delay-seconds or an HTTP-date; null when absent. */
export declare function retryAfterMs(headers: { get(name: string): string | null }): number | null;

/** What a report says about an error, found by its shape (SDK errors, fetch, Node's codes, aborts). */
export declare function classifyError(error: unknown): ReportFields;

/** A granted call; `degraded` when the client made it up because the sidecar was late or unreachable. */
export interface Permit {
  id: string | null;
  breaker: string;
  probe: boolean;
  degraded: boolean;
  /** Fast-path permits (taken on the sidecar's posted state, without asking): the breaker's generation then. */
  generation?: number | null;
  /** Routed permits: the chain's strategy, why it chose this member, and the figure it used. */
  strategy?: 'ordered' | 'fastest' | 'cheapest' | 'weighted' | null;
  why?: 'order' | 'latency' | 'refresh' | 'cost' | 'weight' | null;
  figure?: number | null;
  /** The breaker's `permit_ttl` in ms: a permit not renewed within it expires and counts as a timeout. */
  ttlMs?: number | null;
}

/** A breaker as `status` describes it. */
export interface BreakerStatus {
  name: string;
  state: BreakerState;
  generation: number;
  state_since: string;
  open_until: string | null;
  consecutive_failures: number;
  calls_in_window: number;
  failures_in_window: number;
  failure_rate: number;
  slow_call_rate: number;
  failed_probes: number;
  probes_in_flight: number;
  permits_in_flight: number;
  last_error: string | null;
  last_status: number | null;
  queued: number;
  rate_tokens_available?: number;
  token_budget_available?: number;
}

/** A transition, as the sidecar's log line and `subscribe` carry it. */
export interface TransitionEvent {
  event: 'transition';
  timestamp: string;
  breaker: string;
  /** @deprecated the same as `breaker`; sent until 1.0 for subscribers written before it. */
  breaker_name: string;
  old_state: BreakerState;
  new_state: BreakerState;
  reason: string;
  generation: number;
  instance: string;
  [field: string]: unknown;
}

export interface FuseboxOptions {
  /** Default $FUSEBOX_SOCKET, else ./fusebox.sock. */
  socketPath?: string;
  /** Per request, default 2000. */
  timeoutMs?: number;
  /** Call a closed breaker without budgets on the sidecar's posted state, without asking; default true. */
  fastPath?: boolean;
  /** When the sidecar is late or unreachable; default 'allow' (fail open). */
  onUnavailable?: 'allow' | 'deny' | 'raise';
  reconnectIntervalMs?: number;
  /** Your own error mapping, tried before `classifyError`. */
  classify?: (error: unknown) => ReportFields | null | undefined;
  /** Chains for fail-open routing before the sidecar has described them. */
  chains?: Record<string, string[]>;
  /** Where warnings go; default console. */
  logger?: { warn(message: string): void };
}

export interface CallOptions {
  /** Aborts the wait for the sidecar; a guarded call ending in an AbortError is reported cancelled. */
  signal?: AbortSignal;
}

export interface FuseboxEvents {
  failOpen: [info: { name: string; reason: 'timeout' | 'unreachable' }];
  transition: [event: TransitionEvent];
  open: [event: TransitionEvent];
  halfOpen: [event: TransitionEvent];
  /** The sidecar confirmed the subscription `watch()` asked for. */
  watching: [];
  close: [event: TransitionEvent];
}

export declare class Fusebox extends EventEmitter<FuseboxEvents> {
  constructor(options?: FuseboxOptions);
  readonly socketPath: string;
  timeoutMs: number;
  chains: Record<string, string[]>;
  /** Each chain's strategy, as the sidecar's hello said (`ordered` chains may take the fast path). */
  strategies: Record<string, 'ordered' | 'fastest' | 'cheapest' | 'weighted'>;
  /** Counters since the client was made. */
  stats(): { failOpen: number; timeouts: number; unreachable: number; fastPath: number };
  request(message: Record<string, unknown>, options?: CallOptions & { timeoutMs?: number }): Promise<Record<string, any>>;
  acquire(breaker: string, options?: CallOptions & { cost?: number; timeoutMs?: number }): Promise<Permit>;
  route(chain: string, exclude?: string[], options?: CallOptions & { cost?: number; requires?: string[] }): Promise<Permit>;
  report(permit: Permit, fields?: ReportFields): Promise<BreakerState | null>;
  /** Keeps a running call's permit alive (guard, chain and fetch do it themselves); false once the sidecar no longer has it. */
  renew(permit: Permit): Promise<boolean>;
  /**
   * A `fetch` that puts each request under the breaker its host maps to (`routes` added to
   * DEFAULT_ROUTES, or `replaceRoutes`), or `<breaker>/<model>` when the sidecar has one for the
   * JSON body's model; other hosts go under `defaultBreaker`, or pass with one warning per host,
   * or are refused with UnroutedRequest when `strict`.
   */
  fetcher(options?: { routes?: Record<string, string>; replaceRoutes?: Record<string, string>; defaultBreaker?: string; strict?: boolean }):
    (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** The sidecar's breaker names as a hello told them (asked again after 30 s); empty when unreachable. */
  breakerNames(): Promise<Set<string>>;
  status(breaker?: string, options?: CallOptions): Promise<BreakerStatus[]>;
  guard<T>(breaker: string, fn: (permit: Permit, signal?: AbortSignal) => Promise<T> | T,
    options?: CallOptions & { cost?: number }): Promise<T>;
  chain<T>(chain: string, fn: (breaker: string, permit: Permit, signal?: AbortSignal) => Promise<T> | T,
    options?: CallOptions & { cost?: number; requires?: string[] }): Promise<T>;
  /** The global fetch under `breaker`, reported when its body ends (see README). */
  fetch(breaker: string, url: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** Subscribes and emits transition, open, halfOpen, close; watching once the sidecar confirms. */
  watch(): this;
  unwatch(): void;
  close(): void;
  classify(error: unknown): ReportFields;
}
