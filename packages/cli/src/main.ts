#!/usr/bin/env -S node --import tsx
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { UnclipClient, type ConnectionOptions } from "./client.js";
import { parseAddress, UsageError } from "./cli-args.js";
import { status as grpcStatus } from "@grpc/grpc-js";
import { describeError, EXIT, EXIT_STATUS_HELP, exitCodeFor, isGrpcError } from "./exit-codes.js";
import { registerJobCommands } from "./job-commands.js";
import { registerBatchCommands } from "./batch-commands.js";
import { registerManipulationCommands } from "./manipulation-commands.js";
import type { Gateway } from "./command-context.js";

const DEFAULT_ADDRESS = "127.0.0.1:50051";
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command("unclip")
  .description("Talk to an unclip-farm gateway (farm.v1.UnclipService) over gRPC")
  .version(version, "-V, --version", "print the CLI's version")
  .addOption(
    new Option("-a, --address <host:port>", "gateway address: host:port or a gRPC target (dns:///host:port, unix:/path)")
      .env("UNCLIP_GATEWAY")
      .default(DEFAULT_ADDRESS),
  )
  .option("--tls", "connect with TLS (trusting the system's roots unless --cacert); the default is plaintext")
  .option("--cacert <file>", "PEM root certificates to trust for the gateway's certificate (implies --tls)")
  .option("--cert <file>", "PEM client certificate, for mutual TLS (with --key; implies --tls)")
  .option("--key <file>", "PEM private key of --cert")
  .addOption(
    new Option("--api-key <key>", "API key for a farm that needs one (sent as authorization: Bearer <key>); prefer the env").env(
      "UNCLIP_API_KEY",
    ),
  )
  .addHelpText("afterAll", EXIT_STATUS_HELP)
  .showHelpAfterError("(see unclip --help, or unclip <command> --help)")
  // Commander's own messages ("error: unknown option …") read like ours.
  .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, "unclip: ")) })
  // Usage errors exit with 2 (help and --version with 0); set before the subcommands, which inherit it.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE));

type GlobalFlags = { address: string; tls?: boolean; cacert?: string; cert?: string; key?: string; apiKey?: string };

const gateway: Gateway = {
  connect() {
    const o = program.opts<GlobalFlags>();
    const address = parseAddress(o.address, program.getOptionValueSource("address") === "env" ? "UNCLIP_GATEWAY" : "--address");
    if (!o.cert !== !o.key) throw new UsageError("--cert and --key go together (a client certificate and its private key)");
    const connection: ConnectionOptions = {
      tls: o.tls,
      caCert: o.cacert ? readPem("--cacert", o.cacert) : undefined,
      cert: o.cert ? readPem("--cert", o.cert) : undefined,
      key: o.key ? readPem("--key", o.key) : undefined,
      apiKey: apiKeyOf(o.apiKey, program.getOptionValueSource("apiKey") === "env"),
    };
    return new UnclipClient(address, connection);
  },
  invocation() {
    const o = program.opts<GlobalFlags>();
    const flags = [
      ...(program.getOptionValueSource("address") === "cli" ? ["-a", o.address] : []),
      ...(o.tls && !o.cacert && !o.cert ? ["--tls"] : []),
      ...(o.cacert ? ["--cacert", o.cacert] : []),
      ...(o.cert ? ["--cert", o.cert, "--key", o.key!] : []),
      // Never the key itself: these lines end up in terminals, logs and bug reports.
      ...(program.getOptionValueSource("apiKey") === "cli" ? ["--api-key", "<key>"] : []),
    ];
    return ["unclip", ...flags].join(" ");
  },
};

/** A key fit for a metadata value: printable ASCII without spaces. The message never repeats the key. */
function apiKeyOf(key: string | undefined, fromEnv: boolean): string | undefined {
  // An exported but empty UNCLIP_API_KEY means no key, as for the other variables.
  if (key === undefined || (key === "" && fromEnv)) return undefined;
  const source = fromEnv ? "UNCLIP_API_KEY" : "--api-key";
  if (key === "") throw new UsageError(`${source} is empty`);
  if (!/^[\x21-\x7e]+$/.test(key)) throw new UsageError(`${source}: an API key is printable ASCII without spaces`);
  return key;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

registerJobCommands(program, gateway);
registerManipulationCommands(program, gateway);
registerBatchCommands(program, gateway);

program.parseAsync().catch((err: unknown) => {
  // grpc-js' own UNAVAILABLE (no connection) does not say which address it tried.
  const unreachable = isGrpcError(err) && err.code === grpcStatus.UNAVAILABLE && /^No connection established/.test(err.details);
  console.error(
    `unclip: ${unreachable ? `cannot reach the gateway at ${program.opts<GlobalFlags>().address}: ` : ""}${describeError(err)}`,
  );
  process.exit(exitCodeFor(err));
});
