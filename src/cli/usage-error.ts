/**
 * The one error the command line parser throws: bad input from the user. Its message
 * is a single line naming the option and the form it accepts; the bin prints it as
 * `usernet: <message>` and exits with status 2. Control characters from the input are
 * shown escaped (\x0a), so the message stays one line whatever was typed. Anything
 * else thrown by the parser is a bug.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";

  constructor(message: string) {
    super(message.replace(/\p{Cc}/gu, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  }
}
