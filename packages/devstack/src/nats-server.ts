import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** The server's HTTP monitoring endpoint (/connz, /subsz, /jsz), on loopback: http://127.0.0.1:<port>. */
  readonly monitorUrl: string;
  /** Process id of the running server (the new one after a restart), e.g. to read its CPU time. */
  readonly pid: number | undefined;
  /** SIGKILLs the server (no clean shutdown of JetStream); its store directory is kept. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store directory after kill() (a no-op while it runs). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const candidates = ["/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"];

/** Finds nats-server; installs Debian's package when missing and running as root, otherwise says what to install. */
export function findNatsServer(): string {
  const found = () => {
    try {
      return execFileSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).trim() || undefined;
    } catch {
      return candidates.find((c) => existsSync(c));
    }
  };
  let bin = found();
  if (bin) return bin;
  if (process.getuid?.() === 0) {
    console.error("nats-server is not installed: installing Debian's nats-server package (apt-get)…");
    execFileSync("sh", ["-c", "apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq nats-server"], { stdio: "inherit" });
    bin = found();
    if (bin) return bin;
  }
  throw new Error(
    "nats-server (2.9 or later, with JetStream) is required: install it with `sudo apt-get install nats-server` " +
      "or from https://github.com/nats-io/nats-server/releases and put it on the PATH",
  );
}

/**
 * Starts nats-server with JetStream on a random port (or the given one), HTTP monitoring on another random port, and
 * a fresh store directory.
 */
export async function startNatsServer(
  opts: {
    port?: number;
    storeDir?: string;
    /** Require TLS from clients (PEM files); with caFile, also a client certificate that CA signed. */
    tls?: { certFile: string; keyFile: string; caFile?: string };
  } = {},
): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  const ownDir = !opts.storeDir;
  const storeDir = opts.storeDir ?? (await mkdtemp(path.join(tmpdir(), "unclip-nats-")));
  const launch = async (port: number, monitorPort: number) => {
    const tls = opts.tls ? ["--tls", "--tlscert", opts.tls.certFile, "--tlskey", opts.tls.keyFile] : [];
    if (opts.tls?.caFile) tls.push("--tlsverify", "--tlscacert", opts.tls.caFile);
    const child = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort), "-sd", storeDir, ...tls], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    process.once("exit", () => child.kill("SIGKILL"));
    const listening = await new Promise<{ port: number; monitorPort: number }>((resolve, reject) => {
      let log = "";
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        const m = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
        const monitor = /Starting http monitor on [\d.]+:(\d+)/.exec(log);
        if (m && monitor && log.includes("Server is ready")) {
          child.stderr!.off("data", onData);
          resolve({ port: Number(m[1]), monitorPort: Number(monitor[1]) });
        }
      };
      child.stderr!.on("data", onData);
      child.once("exit", (code) => reject(new Error(`nats-server exited with code ${code}:\n${log}`)));
    });
    child.stderr!.resume();
    return { child, listening };
  };
  const first = await launch(opts.port ?? -1, -1);
  let child = first.child;
  const { port, monitorPort } = first.listening;
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
    get pid() {
      return child.pid;
    },
    kill: () => stopChild(child, "SIGKILL"),
    restart: async () => {
      if (!running()) child = (await launch(port, monitorPort)).child;
    },
    stop: async () => {
      await stopChild(child);
      if (ownDir) await rm(storeDir, { recursive: true, force: true });
    },
  };
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", forceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), forceMs);
  await exited;
  clearTimeout(timer);
}
