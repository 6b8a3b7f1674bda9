/**
 * Every error the telemetry package throws. Each has a stable `code` so that callers switch on
 * codes, never on message text; each message names the offending value and what is allowed.
 */
export class SwitchyardError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A metric catalog entry breaks a naming or cardinality rule (docs/naming.md). */
export class CatalogRuleError extends SwitchyardError {
  readonly instrument: string;
  readonly rule: string;

  constructor(instrument: string, rule: string, detail: string) {
    super(
      'SWY_ERR_CATALOG_RULE',
      `metric catalog: instrument "${instrument}" breaks rule ${rule}: ${detail}`,
    );
    this.instrument = instrument;
    this.rule = rule;
  }
}

/** A config file or environment override holds a value the schema does not allow. */
export class ConfigError extends SwitchyardError {
  readonly field: string;

  constructor(field: string, message: string, options?: ErrorOptions) {
    super('SWY_ERR_CONFIG', message, options);
    this.field = field;
  }
}

/** A server could not bind its address (in use, not permitted, not local). */
export class ListenError extends SwitchyardError {
  constructor(what: string, address: string, cause: NodeJS.ErrnoException) {
    super(
      'SWY_ERR_LISTEN',
      `${what} cannot listen on ${address}: ${cause.code ?? cause.message}; pick another address or port in the config`,
      { cause },
    );
  }
}
