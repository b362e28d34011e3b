/**
 * Generated from eda_gateway/openapi.json by `jlpm gen:types`
 * (labextension/scripts/gen-types.mjs): do not edit by hand.
 * tests/test_ui_contract.py fails when this file and openapi.json disagree.
 */

export interface paths {
    "/advanced-eda/api/execute-custom-code/{source_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Run code on the caller's kernel for a dataset
         * @description Runs `code` on the caller's managed kernel for dataset `source_id` (started on first use, restarted if it died). In it: `source_path`, env `EDA_SOURCE_PATH`, and `df` (pandas) for CSV/Parquet/JSON files. Same sandbox and per-user budget as notebook cells; executions on one dataset kernel run one at a time.
         */
        post: operations["executeCustomCode"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/datasets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The datasets the caller may use */
        get: operations["listDatasets"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/rate-limit-status": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's execution budget and running executions */
        get: operations["rateLimitStatus"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/system-stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Host and kernel usage from the latest telemetry sample */
        get: operations["systemStats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** This document */
        get: operations["openapi"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/admin/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Admins: every user with recent activity or a kernel now
         * @description Kernels (with memory and CPU from the latest telemetry sample), budget use now, executions, refusals and verdicts by reason since `since` (default: the last 24 h), last activity and effective limits after overrides.
         */
        get: operations["adminUsers"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/admin/history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Usage over time, in buckets, for charts
         * @description Per user, dense buckets over [since, until) (default: the last hour): executions admitted, refusals, verdicts, peak memory and CPU of the usage samples. Buckets start at multiples of the bucket length.
         */
        get: operations["adminHistory"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/advanced-eda/api/admin/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The activity log, newest first
         * @description Recorded events in [since, until) (default: the last 24 h). Same access rules as the history.
         */
        get: operations["adminEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        Error: {
            error: string;
            message: string;
        };
        RateLimited: components["schemas"]["Error"] & {
            /** @enum {string} */
            error?: "rate_limited";
            /** @enum {string} */
            reason: "per_minute" | "per_day" | "concurrent";
            retry_after_seconds: number;
        };
        ExecuteRequest: {
            /** @description Python code (at most max_code_bytes). */
            code: string;
        };
        ExecuteResult: {
            /** @enum {string} */
            status: "ok" | "error";
            execution_count: number | null;
            outputs: components["schemas"]["Output"][];
            error: components["schemas"]["ErrorInfo"] | null;
            duration_seconds: number;
            kernel_id: string;
            /** @description Output over max_output_bytes was dropped (a stderr marker says so). */
            truncated?: boolean;
        };
        ErrorInfo: {
            ename: string;
            evalue: string;
            traceback: string[];
        };
        /** @description An nbformat v4 output. */
        Output: components["schemas"]["StreamOutput"] | components["schemas"]["DisplayDataOutput"] | components["schemas"]["ExecuteResultOutput"] | components["schemas"]["ErrorOutput"];
        StreamOutput: {
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            output_type: "stream";
            /** @enum {string} */
            name: "stdout" | "stderr";
            text: string;
        };
        DisplayDataOutput: {
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            output_type: "display_data";
            data: Record<string, never>;
            metadata: Record<string, never>;
        };
        ExecuteResultOutput: {
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            output_type: "execute_result";
            data: Record<string, never>;
            metadata: Record<string, never>;
            execution_count: number | null;
        };
        ErrorOutput: {
            /**
             * @description discriminator enum property added by openapi-typescript
             * @enum {string}
             */
            output_type: "error";
            ename: string;
            evalue: string;
            traceback: string[];
        };
        DatasetList: {
            datasets: {
                id: string;
                description: string;
            }[];
        };
        /** Format: date-time */
        Timestamp: string;
        /**
         * @description How much of a user's execution budget is used: `normal` below the `medium` share of the window's executions, `medium` below the `high` share, `high` below all of it, `limited` when the next execution would be refused (window full, daily quota used up, or every concurrent slot busy). `x-thresholds` holds those shares; the server and the UI read them from here (eda_gateway/levels.py, labextension/src/api-types.ts), and the UI colours its per-kernel memory and CPU meters with the same shares.
         * @enum {string}
         */
        Level: "normal" | "medium" | "high" | "limited";
        RateLimitStatus: {
            user: string;
            limits: {
                max_executions_per_minute: number;
                window_seconds: number;
                max_concurrent_executions: number;
                /** @description Executions admitted in any rolling 24 h (EDARateLimiter.max_executions_per_day); 0: no daily quota. */
                max_executions_per_day: number;
            };
            executions_in_window: number;
            remaining: number;
            concurrent_executions: number;
            retry_after_seconds: number;
            reset_in_seconds: number;
            status: components["schemas"]["Level"];
            /** @description The daily quota (EDARateLimiter.max_executions_per_day): admissions in the last 24 h. null when there is no daily quota. */
            daily: {
                executions: number;
                remaining: number;
                /** @description Seconds until the oldest admission of the last 24 h leaves the quota (0: none in it). */
                reset_in_seconds: number;
            } | null;
            active_executions: {
                kernel_id: string;
                /** @enum {string} */
                source: "notebook" | "api";
                started_at: components["schemas"]["Timestamp"];
                duration_seconds: number;
            }[];
            session: {
                started_at: components["schemas"]["Timestamp"];
                duration_seconds: number;
            } | null;
            /** @description The caller's disk quota (EDASandbox.max_disk_mb): workspace and content folder together, one filesystem per user. null when the server runs without disk quotas. Sizes are null until the user's volume is first mounted. */
            disk: {
                limit_bytes: number;
                used_bytes: number | null;
                free_bytes: number | null;
                /** @description Less than 1 MiB free: writes fail with ENOSPC (a `DiskQuotaExceeded` verdict was recorded). */
                full: boolean;
                /**
                 * Format: date-time
                 * @description When a write last failed for want of space, or the volume last became full (this server run).
                 */
                last_exceeded_at: string | null;
            } | null;
        };
        SystemStats: {
            cpu: {
                percent: number;
                count: number;
            };
            memory: {
                total: number;
                used: number;
                available: number;
                percent: number;
            };
            active_users: number;
            active_kernels: number;
            active_executions: number;
            /** @enum {string} */
            enforcement: "cgroup-v2" | "cgroup-v1" | "psutil";
            /** @description Confinement layers between kernels (docs/isolation.md); empty: none */
            isolation?: ("landlock" | "bwrap" | "uid")[];
            /** @description Set when kernels run less confined than eda_gateway requires: isolation = 'none', or a single-user server that cannot confine them (docs/isolation.md) */
            isolation_warning?: string | null;
            /** Format: date-time */
            sampled_at: string | null;
            kernels: {
                kernel_id: string;
                user: string;
                pid: number | null;
                memory_bytes: number;
                cpu_percent: number;
                execution_state: string;
                limits: {
                    memory_bytes: number;
                    cpu_percent: number;
                    execution_seconds: number;
                };
                /** @description Set for a dataset kernel of the execution API (the EDA Runner, REST and MCP runs of its owner on that dataset share it): the dataset's id. */
                dataset: string | null;
                /** @description A kernel started ahead for its owner's next dataset (`EDAGateway.warm_start`); it takes the dataset of their next run on a new one. */
                warm: boolean;
            }[];
        };
        /** @enum {string} */
        EventKind: "execution.admitted" | "execution.refused" | "verdict" | "kernel.started" | "kernel.restarted" | "kernel.stopped" | "kernel.reclaimed" | "login";
        AdminUsers: {
            /** @description Only with a shared admission store (`EDARateLimiter.store_url`): every server on it (this one too), from its last heartbeat (at most 10 s old; a server gone for 30 s is left out), with its live kernels. Act on a kernel at its server's `url`. */
            servers?: {
                /** @description `EDAGateway.server_name`. */
                server: string;
                /** @description Where the server is reached (`EDAGateway.server_url`). */
                url: string;
                published_at: components["schemas"]["Timestamp"];
                this_server: boolean;
                kernels: {
                    kernel_id: string;
                    user: string;
                    memory_bytes: number;
                    cpu_percent: number;
                    execution_state: string;
                }[];
            }[];
            since: components["schemas"]["Timestamp"];
            until: components["schemas"]["Timestamp"];
            users: {
                user: string;
                admin: boolean;
                groups: string[];
                kernels: {
                    kernel_id: string;
                    name: string | null;
                    execution_state: string | null;
                    connections: number;
                    /** Format: date-time */
                    last_activity: string | null;
                    memory_bytes: number | null;
                    cpu_percent: number | null;
                    /** @description Set for a dataset kernel of the execution API (the EDA Runner, REST and MCP runs of its owner on that dataset share it): the dataset's id. */
                    dataset: string | null;
                    /** @description A kernel started ahead for its owner's next dataset (`EDAGateway.warm_start`); it takes the dataset of their next run on a new one. */
                    warm: boolean;
                }[];
                kernel_count: number;
                /** @description Sum over the user's kernels; null before the first sample. */
                memory_bytes: number | null;
                cpu_percent: number | null;
                executions_in_window: number;
                concurrent_executions: number;
                status: components["schemas"]["Level"];
                /** @description Executions admitted since `since`. */
                executions: number;
                /** @description Refusals since `since` by reason (`per_minute`, `per_day`, `concurrent`, `unavailable`). */
                refusals: {
                    [key: string]: number;
                };
                /** @description Sandbox verdicts since `since` by name (`ExecutionTimeout`, `MemoryLimitExceeded`, `DiskQuotaExceeded`, ...). */
                verdicts: {
                    [key: string]: number;
                };
                /** Format: date-time */
                last_activity: string | null;
                /** @description Effective limits after user/@group overrides. */
                limits: {
                    [key: string]: number;
                };
                /** @description The servers that recorded this user's events in the range, sorted: several when servers share one PostgreSQL history (`EDAGateway.history_db`). */
                servers: string[];
            }[];
        };
        History: {
            since: components["schemas"]["Timestamp"];
            until: components["schemas"]["Timestamp"];
            bucket_seconds: number;
            users: {
                user: string;
                totals: {
                    executions: number;
                    refusals: {
                        [key: string]: number;
                    };
                    verdicts: {
                        [key: string]: number;
                    };
                };
                points: {
                    start: components["schemas"]["Timestamp"];
                    executions: number;
                    refusals: number;
                    verdicts: number;
                    peak_memory_bytes: number | null;
                    /** @description Mean over the bucket's samples. */
                    cpu_percent: number | null;
                    peak_cpu_percent: number | null;
                    kernels: number | null;
                }[];
                /** @description The servers that recorded this user's events in the range, sorted: several when servers share one PostgreSQL history (`EDAGateway.history_db`). */
                servers: string[];
            }[];
        };
        ActivityEvents: {
            since: components["schemas"]["Timestamp"];
            until: components["schemas"]["Timestamp"];
            events: {
                at: components["schemas"]["Timestamp"];
                user: string;
                /** @description The server that recorded the row (`EDAGateway.server_name`); several servers may share one PostgreSQL history. */
                server: string;
                kind: components["schemas"]["EventKind"];
                kernel_id: string | null;
                source: string | null;
                /** @description Refusal reason or verdict name (e.g. `DiskQuotaExceeded`: the user's disk volume is full; its kernel_id is null). */
                reason: string | null;
                details: Record<string, never>;
                /** @description Occurrences this row stands for: 1, except `execution.refused`, one row per user, minute, kernel, source and reason, `at` the minute's start. */
                count: number;
            }[];
        };
        /** @description Not a REST answer: `metadata.eda_gateway` of the iopub `error` and the `execute_reply` that end an execution eda_gateway refused or stopped on the kernel websocket (docs/clients.md). What a client acts on travels here as numbers, never only in `evalue`'s words. */
        VerdictMetadata: {
            /** @description `RateLimitExceeded`, `AdmissionUnavailable` (the shared admission store is out of reach; `reason` is `unavailable`), `InvalidExecuteRequest`, or a sandbox verdict (`ExecutionTimeout`, `BackgroundExecutionTimeout`, `MemoryLimitExceeded`, ...). */
            verdict: string;
            /** @description For `RateLimitExceeded`: which limit refused it, as `RateLimited.reason`. */
            reason?: string;
            /** @description For `RateLimitExceeded`: seconds until the budget admits an execution again (0: when a running execution ends). */
            retry_after_seconds?: number;
            /** @description For time verdicts: the limit that was passed. */
            limit_seconds?: number;
            /** @description For memory verdicts: the limit that was passed. */
            limit_bytes?: number;
            /** @description What the sandbox did, e.g. `interrupted`, `killed`, `refused`. */
            action?: string;
        } & {
            [key: string]: unknown;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    executeCustomCode: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @example sales */
                source_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "code": "df.describe()"
                 *     }
                 */
                "application/json": components["schemas"]["ExecuteRequest"];
            };
        };
        responses: {
            /** @description The execution ran (status `ok`) or ended in an error (status `error`: the code raised, or a sandbox limit stopped it: `ExecutionTimeout`, `MemoryLimitExceeded`, or `BackgroundExecutionTimeout` when the kernel was killed for keeping a core busy outside executions while this run waited). */
            200: {
                headers: {
                    /** @description IETF draft: the caller's execution budget, e.g. `"exec";q=10;w=60`. */
                    "RateLimit-Policy"?: string;
                    /** @description IETF draft: what is left of it, e.g. `"exec";r=7;t=41`. */
                    RateLimit?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ExecuteResult"];
                };
            };
            /** @description Body not JSON, `code` missing or not a string, unknown fields, or an invalid source id. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No valid token, the dataset is not assigned to the caller, or the caller is at max_kernels_per_user. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such dataset. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description The dataset kernel was shut down (twice) while the request waited; send it again. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description The body is over EDAGateway.max_code_bytes. */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Over the per-minute or the concurrency limit: wait `Retry-After` seconds. */
            429: {
                headers: {
                    /** @description Whole seconds to wait, at least 1. */
                    "Retry-After": number;
                    /** @description IETF draft: the caller's execution budget, e.g. `"exec";q=10;w=60`. */
                    "RateLimit-Policy"?: string;
                    /** @description IETF draft: what is left of it, e.g. `"exec";r=7;t=41`. */
                    RateLimit?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RateLimited"];
                };
            };
            /** @description The dataset kernel could not be started or restarted (`error`: `kernel_unavailable`), or the shared admission store (`EDARateLimiter.store_url`) is out of reach (`error`: `admission_unavailable`, with `retry_after_seconds`); try again after `Retry-After` seconds. */
            503: {
                headers: {
                    /** @description Seconds to wait. */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    listDatasets: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Assigned datasets (admins: all). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DatasetList"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (no valid token, or not yours). */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    rateLimitStatus: {
        parameters: {
            query?: {
                /** @description Admins only: another user's status. */
                user?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Budget, usage and active executions. */
            200: {
                headers: {
                    /** @description IETF draft: the caller's execution budget, e.g. `"exec";q=10;w=60`. */
                    "RateLimit-Policy"?: string;
                    /** @description IETF draft: what is left of it, e.g. `"exec";r=7;t=41`. */
                    RateLimit?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RateLimitStatus"];
                };
            };
            /** @description Bad query. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (no valid token, or not yours). */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No such user. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description The shared admission store (`EDARateLimiter.store_url`) is out of reach: `error` is `admission_unavailable`; try again after `Retry-After` seconds. */
            503: {
                headers: {
                    /** @description Seconds to wait. */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    systemStats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The caller's kernels (admins: all). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SystemStats"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (no valid token, or not yours). */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    openapi: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OpenAPI 3 document. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not allowed (no valid token, or not yours). */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    adminUsers: {
        parameters: {
            query?: {
                /** @description Start of the range: ISO 8601 (`2026-11-28T01:02:03Z`, no zone means UTC) or epoch seconds. */
                since?: string;
                /** @description End of the range (exclusive), same forms; default now. */
                until?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description One row per user. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AdminUsers"];
                };
            };
            /** @description Bad query. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Not an admin. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    adminHistory: {
        parameters: {
            query?: {
                /** @description Whose history. Admins: anyone (default everyone). Others: only themselves (the default). */
                user?: string;
                /** @description Start of the range: ISO 8601 (`2026-11-28T01:02:03Z`, no zone means UTC) or epoch seconds. */
                since?: string;
                /** @description End of the range (exclusive), same forms; default now. */
                until?: string;
                /** @description Bucket length: seconds, or with a unit: `30s`, `5m`, `1h`, `1d`. Default: about 240 buckets of whole minutes, at least 60 s. At most 2000 buckets. */
                bucket?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Time series per user. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["History"];
                };
            };
            /** @description Bad query (time, bucket, too many buckets). */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Another user's history, and the caller is not an admin. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    adminEvents: {
        parameters: {
            query?: {
                /** @description Whose history. Admins: anyone (default everyone). Others: only themselves (the default). */
                user?: string;
                /** @description Start of the range: ISO 8601 (`2026-11-28T01:02:03Z`, no zone means UTC) or epoch seconds. */
                since?: string;
                /** @description End of the range (exclusive), same forms; default now. */
                until?: string;
                /** @description Only these kinds (repeat the parameter for several). */
                kind?: components["schemas"]["EventKind"][];
                /** @description At most this many events. */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Events, newest first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ActivityEvents"];
                };
            };
            /** @description Bad query. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description No valid token. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Another user's events, and the caller is not an admin. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Method not allowed. */
            405: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
}

/** Shares of a budget at which a level starts (openapi.json, Level's x-thresholds). */
export const LEVEL_THRESHOLDS = {
  medium: 0.5,
  high: 0.8
} as const;
