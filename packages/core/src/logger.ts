import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs on stdout, one logger per process, named after the service; `fields` go on every line. */
export function createLogger(service: string, level: string, fields: Record<string, string> = {}): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid, ...fields } });
}
