import type { Command } from "commander";
import { toJson, type GenMessage, type Message } from "@unclip/protocol";
import { jsonOption } from "./cli-args.js";
import type { UnclipClient } from "./client.js";
import { withClient, type Gateway } from "./command-context.js";
import { EXIT } from "./exit-codes.js";

/** Prints a reply as protobuf JSON with --json, else as `describe` puts it. */
export function printReply<T extends Message>(
  schema: GenMessage<T>,
  reply: T,
  json: boolean | undefined,
  describe: (m: T) => string,
): void {
  console.log(json ? JSON.stringify(toJson(schema, reply), null, 2) : describe(reply));
}

interface ReplyCommand<T extends Message> {
  name: string;
  description: string;
  /** The one argument, e.g. `<jobId>`. */
  argument: string;
  /** What --json prints, e.g. "the Job". */
  json: string;
  schema: GenMessage<T>;
  call(client: UnclipClient, id: string): Promise<T>;
  describe(reply: T): string;
  /** Whether the reply makes the command exit 1. */
  unsuccessful?(reply: T): boolean;
}

/** A command that makes one call about the job or batch its argument names and prints the reply. */
export function registerReplyCommand<T extends Message>(program: Command, gateway: Gateway, c: ReplyCommand<T>): void {
  program
    .command(c.name)
    .description(c.description)
    .argument(c.argument)
    .addOption(jsonOption(c.json))
    .action(async (id: string, o: { json?: boolean }) => {
      const reply = await withClient(gateway, (client) => c.call(client, id));
      printReply(c.schema, reply, o.json, c.describe);
      if (c.unsuccessful?.(reply)) process.exitCode = EXIT.UNSUCCESSFUL;
    });
}
