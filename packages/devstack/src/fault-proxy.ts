import net from "node:net";

/**
 * What the proxy does with connections:
 * - "pass": forwards bytes both ways to the target;
 * - "stall": accepts connections and reads what clients send but never answers, and holds connections that were
 *   open silent too (an object store that hangs instead of failing); when the stall ends those connections are reset;
 * - "refuse": closes new connections at once (a server that is down); open connections keep passing.
 */
export type FaultProxyMode = "pass" | "stall" | "refuse";

export interface FaultProxyOptions {
  /** Port of the server behind the proxy. */
  targetPort: number;
  /** Host of the server behind the proxy (default 127.0.0.1). */
  targetHost?: string;
  /** Port the proxy listens on, on 127.0.0.1 (default: any free port). */
  port?: number;
  /** Mode to start in (default "pass"). */
  mode?: FaultProxyMode;
}

export interface FaultProxy {
  readonly port: number;
  /** http://127.0.0.1:<port>, for clients that want an endpoint. */
  readonly endpoint: string;
  readonly mode: FaultProxyMode;
  setMode(mode: FaultProxyMode): void;
  /** Connections accepted so far, whatever the mode. */
  readonly accepted: number;
  /** Stops listening and closes every connection; idempotent. */
  close(): Promise<void>;
}

interface Link {
  readonly client: net.Socket;
  readonly upstream?: net.Socket;
  /** Held silent by a stall: nothing is forwarded any more, and the link is reset when the stall ends. */
  frozen: boolean;
}

const discard = () => undefined;

/** A loopback TCP proxy that can pass, stall or refuse connections to a server, for fault tests. */
export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const targetHost = opts.targetHost ?? "127.0.0.1";
  let mode: FaultProxyMode = opts.mode ?? "pass";
  let accepted = 0;
  const links = new Set<Link>();

  const drop = (link: Link) => {
    links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  };
  const freeze = (link: Link) => {
    if (link.frozen) return;
    link.frozen = true;
    if (link.upstream) {
      link.client.unpipe(link.upstream);
      link.upstream.unpipe(link.client);
      link.upstream.on("data", discard);
    }
    link.client.on("data", discard); // keeps reading, so the client's writes succeed and it waits for an answer
  };

  const server = net.createServer((client) => {
    accepted++;
    if (mode === "refuse") {
      client.resetAndDestroy();
      return;
    }
    if (mode === "stall") {
      const link: Link = { client, frozen: false };
      links.add(link);
      client.on("error", discard).on("close", () => links.delete(link));
      freeze(link);
      return;
    }
    const upstream = net.connect({ host: targetHost, port: opts.targetPort });
    const link: Link = { client, upstream, frozen: false };
    links.add(link);
    for (const socket of [client, upstream]) socket.on("error", () => drop(link)).on("close", () => drop(link));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    port,
    endpoint: `http://127.0.0.1:${String(port)}`,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    setMode(next: FaultProxyMode) {
      if (next === mode) return;
      const previous = mode;
      mode = next;
      if (next === "stall") for (const link of links) freeze(link);
      // A stall that ends resets what it held, as a hung server's connections end in a timeout or a reset.
      if (previous === "stall") for (const link of [...links]) if (link.frozen) drop(link);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const link of [...links]) drop(link);
      });
      return closing;
    },
  };
}
