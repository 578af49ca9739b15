/**
 * Refusals as acknowledgements. Nest's own WebSocket exception filter answers a thrown WsException (a guard's
 * refusal, a handler's "forbidden") with an `exception` event, and never calls the event's ack: a client's
 * `await socket.emitWithAck(...)` would wait forever. This filter answers the ack instead, with
 * `{ ok: false, code, message }`; an event sent without an ack still gets Nest's `exception` event.
 *
 * Nest applies no global filter to gateways (app.useGlobalFilters covers HTTP only): put
 * `@UseFilters(new WsAckExceptionFilter())` on each gateway.
 */
import { Catch, Logger, type ArgumentsHost } from "@nestjs/common";
import { BaseWsExceptionFilter, WsException } from "@nestjs/websockets";

/** What a refused event's ack receives. */
export interface Refusal {
  ok: false;
  code: string;
  message: string;
}

type Ack = (answer: Refusal) => void;

@Catch()
export class WsAckExceptionFilter extends BaseWsExceptionFilter {
  private readonly log = new Logger("WsAckExceptionFilter");

  override catch(exception: unknown, host: ArgumentsHost): void {
    // A handler's arguments in Nest's WebSocket context: the socket, the event's data, its ack (if the client
    // asked for one), the event's name.
    const ack: unknown = host.getArgByIndex(2);
    if (!isAck(ack)) return super.catch(exception, host);
    if (exception instanceof WsException) return ack(refusal(exception.getError()));
    // Anything else is the server's own failure: logged here, and no details to the client.
    this.log.error(exception);
    ack({ ok: false, code: "server_error", message: "The server ran into a problem handling this event; try again later." });
  }
}

function isAck(value: unknown): value is Ack {
  return typeof value === "function";
}

/** A WsException's error (`{ code, message }`, or a plain sentence) as a refusal. */
function refusal(error: string | object): Refusal {
  if (typeof error === "string") return { ok: false, code: "refused", message: error };
  return {
    ok: false,
    code: "code" in error && typeof error.code === "string" ? error.code : "refused",
    message: "message" in error && typeof error.message === "string" ? error.message : "The server refused this event.",
  };
}
