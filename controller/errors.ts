/**
 * Errors a user sees. Every one says what went wrong, where, and what to do next,
 * and carries the process exit code it maps to (see docs/cli.md).
 */
export const EXIT = {
  ok: 0,
  failure: 1, // codeb itself or a service failed
  invalid: 2, // the manifest (or another input) is invalid
  healthGate: 3, // health gate failed, traffic untouched
  rolledBack: 4, // rolled back after the switch
  pending: 10, // `plan`: changes are pending
} as const;

export class CodebError extends Error {
  constructor(
    message: string,
    readonly opts: { hint?: string; exitCode?: number; where?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CodebError';
  }
  get exitCode(): number {
    return this.opts.exitCode ?? EXIT.failure;
  }
  get hint(): string | undefined {
    return this.opts.hint;
  }
  get where(): string | undefined {
    return this.opts.where;
  }
}

/** A required service (Postgres, Redis, S3, Caddy, Podman) cannot be reached. */
export class ServiceUnavailableError extends CodebError {
  constructor(service: string, address: string, cause: unknown, startCommand = 'codeb stack up') {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`${service} is not reachable at ${address}: ${why}`, {
      hint: `Start it (\`${startCommand}\` for the local stack) or point codeb at the right address (see docs/stack.md).`,
      cause,
    });
  }
}
