import type { UnclipClient } from "./client.js";

/** How the commands reach the gateway (the global flags), and how to name it in hints. */
export interface Gateway {
  connect(): UnclipClient;
  /** `unclip` plus the connection flags this run was given, for the hints printed after Ctrl-C. */
  invocation(): string;
}

export async function withClient<T>(gateway: Gateway, fn: (c: UnclipClient) => Promise<T>): Promise<T> {
  const client = gateway.connect();
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
