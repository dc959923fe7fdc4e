// A Node.js service in a Baldur fleet, in one file, speaking the wire contract
// of docs/contract.md with the `nats` package:
//
//   - it reads its dependency's breaker from the KV bucket baldur_breakers,
//     watched, so deciding whether to call is a memory read (contract §9);
//   - it reports call outcomes to baldur.outcome.<svc> (§4.1);
//   - it keeps a call it was not allowed to make as a dead letter on
//     baldur.dlq.<svc> (§4.4);
//   - it serves replays on baldur.replay.<svc> in queue group baldur-replay
//     (§5).
//
// The demo: twelve charges against a simulated payment provider that fails
// from the fifth to the twelfth; the breaker-workers open the breaker; the
// thirteenth charge is refused locally and kept as a dead letter. When an
// operator closes the breaker with trigger_replay
//
//   baldur breaker close payments --reason 'provider back' --trigger-replay
//
// a replay-worker delivers the dead letter here and it is charged. Stop with
// Ctrl-C (SIGINT) or SIGTERM.
//
// Environment: NATS_URL (default nats://127.0.0.1:4222, comma-separated for a
// cluster), BALDUR_SERVICE (the dependency, default payments), BALDUR_NODE_ID
// (this instance, default <hostname>-<pid>).

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, headers, JSONCodec } from "nats";

const natsURL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const service = process.env.BALDUR_SERVICE || "payments";
const nodeId = process.env.BALDUR_NODE_ID || `${hostname()}-${process.pid}`;

const jc = JSONCodec();

// log prints one line: what happened, then key=value pairs.
function log(event, fields = {}) {
  const pairs = Object.entries(fields).map(([k, v]) =>
    `${k}=${typeof v === "string" && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`);
  console.log([event, ...pairs].join(" "));
}

// publish sends body to a JetStream subject with the CloudEvents headers of
// contract §3 and waits for the stream's ack. Nats-Msg-Id (msgID) equals
// ce-id, so a publish retried with the same id is stored once. It returns the
// id.
async function publish(js, subject, type, body) {
  const id = randomUUID();
  const h = headers();
  h.set("ce-specversion", "1.0");
  h.set("ce-type", type);
  h.set("ce-id", id);
  h.set("ce-source", nodeId);
  h.set("ce-time", new Date().toISOString());
  h.set("content-type", "application/json");
  await js.publish(subject, jc.encode(body), { msgID: id, headers: h });
  return id;
}

// Breaker mirrors the key <service> of baldur_breakers. The watch delivers the
// current value, then every change.
class Breaker {
  #nc;
  #value = null; // null: no breaker yet, which is closed
  #waiters = new Set();

  constructor(nc) {
    this.#nc = nc;
  }

  // watch binds to the bucket (the fleet's workers create it) and resolves
  // once the current value is loaded.
  static async watch(nc, js) {
    const b = new Breaker(nc);
    const kv = await js.views.kv("baldur_breakers", { bindOnly: true });
    let loaded;
    const initialized = new Promise((resolve) => (loaded = resolve));
    const updates = await kv.watch({ key: service, initializedFn: () => loaded() });
    (async () => {
      for await (const e of updates) {
        b.#value = e.operation === "PUT" ? e.json() : null;
        for (const w of b.#waiters) w();
      }
    })();
    await initialized;
    return b;
  }

  // value is the breaker's state as stored (contract §9), or null.
  get value() {
    return this.#value;
  }

  // allow decides as the Go SDK does: closed admits; open admits nothing
  // until recovery_at; half-open (or open past recovery_at) admits a call only
  // with a probe permit from a breaker-worker (§6). Manual modes win.
  async allow() {
    const b = this.#value;
    if (b === null) return true;
    switch (b.mode) {
      case "disabled":
      case "metrics_only":
      case "forced_closed":
        return true;
      case "forced_open":
        return false;
    }
    if (b.state === "closed") return true;
    if (b.state === "open" && Date.now() < Date.parse(b.recovery_at)) return false;
    try {
      const reply = await this.#nc.request(`baldur.permit.${service}`, jc.encode({ node: nodeId }), { timeout: 100 });
      return jc.decode(reply.data).granted === true;
    } catch {
      return false; // no answer: do not call
    }
  }

  // until resolves once ok(value) holds, or rejects after ms.
  until(ok, ms) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!ok(this.#value)) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(this.#value);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`breaker ${service}: condition not reached within ${ms} ms`));
      }, ms);
      this.#waiters.add(check);
      check();
    });
  }
}

// Reporter counts outcomes and sends what it counted as one report per flush
// (§4.1): a batch of calls, or a single one.
class Reporter {
  #js;
  #successes = 0;
  #failures = 0;
  #trailing = 0; // failures since the last success
  #types = {};

  constructor(js) {
    this.#js = js;
  }

  record(err) {
    if (!err) {
      this.#successes++;
      this.#trailing = 0;
      return;
    }
    this.#failures++;
    this.#trailing++;
    // At most 32 failure types per report; the rest count as OTHER.
    let type = err.failureType ?? "OTHER";
    if (!(type in this.#types) && Object.keys(this.#types).length >= 31) type = "OTHER";
    this.#types[type] = (this.#types[type] ?? 0) + 1;
  }

  async flush() {
    if (this.#successes + this.#failures === 0) return;
    const report = {
      successes: this.#successes,
      failures: this.#failures,
      slow_calls: 0,
      trailing_failures: this.#trailing,
      failure_types: this.#types,
    };
    this.#successes = this.#failures = this.#trailing = 0;
    this.#types = {};
    await publish(this.#js, `baldur.outcome.${service}`, "baldur.outcome.v1", report);
    log("reported", { successes: report.successes, failures: report.failures });
  }
}

// chargeCard stands in for the payment provider: charges 5 to 12 fail with
// a 503, the others go through.
let charges = 0;
async function chargeCard(order) {
  await sleep(5);
  charges++;
  if (charges >= 5 && charges <= 12) {
    throw Object.assign(new Error(`provider answered 503 for order ${order.id}`), { failureType: "HTTP_503" });
  }
}

// charge calls the provider if the breaker allows it and records the
// outcome; a refused charge is kept as a dead letter, to be replayed. (A
// failed charge could be kept the same way.)
async function charge(js, breaker, reporter, order) {
  if (!(await breaker.allow())) {
    const id = await publish(js, `baldur.dlq.${service}`, "baldur.dlq.v1", {
      domain: "external_service",
      failure_type: "CIRCUIT_OPEN",
      operation: "charge",
      idempotency_key: `order-${order.id}-charge`,
      entity_type: "order",
      entity_id: order.id,
      request: order,
      error_message: `breaker ${service} is ${breaker.value.state}`,
      priority: "critical",
    });
    log("dead_letter", { id, order: order.id });
    return;
  }
  try {
    await chargeCard(order);
    reporter.record(null);
    log("charged", { order: order.id });
  } catch (err) {
    reporter.record(err);
    log("failed", { order: order.id, error: err.message });
  }
}

// serveReplays answers replay deliveries (§5) in the queue group, so one
// instance handles each. The body is the dead letter's request; handle must
// be idempotent (Baldur-Idempotency-Key). It throws to fail the attempt, with
// err.retryable = true to have it tried again later.
function serveReplays(nc, handle) {
  return nc.subscribe(`baldur.replay.${service}`, {
    queue: "baldur-replay",
    callback: async (err, msg) => {
      if (err) {
        log("replay_subscription_failed", { error: err.message });
        return;
      }
      let reply = { ok: true };
      try {
        await handle({
          id: msg.headers?.get("Baldur-Dlq-Id"),
          attempt: Number(msg.headers?.get("Baldur-Attempt")),
          operation: msg.headers?.get("Baldur-Operation"),
          idempotencyKey: msg.headers?.get("Baldur-Idempotency-Key"),
          body: msg.data.length > 0 ? jc.decode(msg.data) : null,
        });
      } catch (e) {
        reply = { ok: false, error: String(e?.message ?? e).slice(0, 16384), retryable: e?.retryable === true };
      }
      msg.respond(jc.encode(reply));
    },
  });
}

const order = (n) => ({ id: String(n), amount: 1999, currency: "EUR" });

const stopped = new Promise((resolve) => {
  process.once("SIGINT", resolve);
  process.once("SIGTERM", resolve);
});

const nc = await connect({ servers: natsURL.split(","), name: `baldur-example-${nodeId}`, maxReconnectAttempts: -1 });
try {
  const js = nc.jetstream();
  const breaker = await Breaker.watch(nc, js);
  const reporter = new Reporter(js);
  const flusher = setInterval(() => reporter.flush().catch((e) => log("report_failed", { error: e.message })), 1000);
  serveReplays(nc, async (r) => {
    if (r.operation !== "charge" || r.body === null) {
      throw new Error(`cannot replay ${r.operation} without an order`); // not retryable
    }
    await chargeCard(r.body);
    log("replayed", { id: r.id, attempt: r.attempt, order: r.body.id });
  });
  await nc.flush(); // the replay subscription is registered
  log("ready", { service, node: nodeId });

  for (let n = 1; n <= 12; n++) await charge(js, breaker, reporter, order(n));
  await reporter.flush();
  const b = await breaker.until((v) => v?.state === "open", 30_000);
  log("breaker_open", { service, generation: b.generation, failures: b.window.failures });
  await charge(js, breaker, reporter, order(13));

  log("waiting", { hint: `close the breaker with trigger_replay to replay order 13` });
  await stopped;
  clearInterval(flusher);
  await reporter.flush();
} catch (err) {
  console.error(`service failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await nc.drain();
  log("stopped");
}
