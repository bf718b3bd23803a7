/**
 * Every API error has one shape, `{ error: { reason, message } }`: a stable kebab-case
 * reason for scripts and a sentence for people. This maps facade reasons and fastify's
 * own errors (bad JSON, schema violations, wrong media type, too large) onto it.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** Facade reasons (ControlError, forward errors) to HTTP statuses. */
const statusOfReason: Record<string, number> = {
  invalid: 400,
  unsupported: 400,
  "not-found": 404,
  "not-removable": 409,
  "id-taken": 409,
  conflict: 409,
  "bind-failed": 409,
  "state-write-failed": 507,
};

/** An error thrown by the facade, as an ApiError; unknown errors stay 500s. */
export function fromFacade(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const err = e as { reason?: unknown; message?: unknown };
  const message = typeof err?.message === "string" ? err.message : String(e);
  if (typeof err?.reason === "string") {
    return new ApiError(statusOfReason[err.reason] ?? 400, err.reason, message);
  }
  return new ApiError(500, "internal-error", message);
}

export function errorBody(reason: string, message: string) {
  return { error: { reason, message } };
}

/** The error handler of one API server; `internalError` counts and logs a bug. */
export const errorHandler =
  (internalError: (where: string, err: unknown) => void) =>
  (e: FastifyError | ApiError, req: FastifyRequest, reply: FastifyReply) =>
    handleError(e, req, reply, internalError);

type ValidationErrors = NonNullable<FastifyError["validation"]>;

/**
 * A body that fails a union of `type`-tagged objects fails every branch, and the
 * validator stops at each branch's first error: a branch of another type often stops at
 * an "unknown field" (checked before the fields themselves) that says nothing about the
 * body. So a bad field value reported by a branch whose `type` matched wins over those.
 */
function ownBranchErrors(errors: ValidationErrors): ValidationErrors {
  const branchOf = (v: ValidationErrors[number]) => /^#\/anyOf\/(\d+)\//.exec(v.schemaPath)?.[1];
  const wrongType = new Set(errors.filter((v) => v.instancePath === "/type").map(branchOf));
  const badValues = errors.filter((v) => {
    const b = branchOf(v);
    return (
      b !== undefined && !wrongType.has(b) && v.instancePath !== "" && v.keyword !== "additionalProperties"
    );
  });
  return badValues.length > 0 ? badValues : errors;
}

function handleError(
  e: FastifyError | ApiError,
  req: FastifyRequest,
  reply: FastifyReply,
  internalError: (where: string, err: unknown) => void,
) {
  if (e instanceof ApiError) {
    if (e.statusCode >= 500) req.log.error({ err: e }, "request failed");
    return reply.code(e.statusCode).send(errorBody(e.reason, e.message));
  }
  if (e.validation) {
    const errors = ownBranchErrors(e.validation);
    const unknown = errors.find((v) => v.keyword === "additionalProperties");
    const reason = unknown ? "unknown-field" : "invalid-request";
    const field = unknown?.params?.additionalProperty;
    const message = field ? `${e.validationContext ?? "body"}: unknown field "${field}"` : e.message;
    return reply.code(400).send(errorBody(reason, message));
  }
  switch (e.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return reply.code(400).send(errorBody("malformed-json", e.message));
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return reply.code(415).send(errorBody("unsupported-media-type", e.message));
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return reply.code(413).send(errorBody("body-too-large", e.message));
  }
  if (e instanceof SyntaxError) return reply.code(400).send(errorBody("malformed-json", e.message));
  const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
  // an error no route meant to raise: a bug, counted and logged with its stack
  if (status >= 500) internalError(`API ${req.method} ${req.url.split("?")[0]}`, e);
  return reply.code(status).send(errorBody(status >= 500 ? "internal-error" : "bad-request", e.message));
}
