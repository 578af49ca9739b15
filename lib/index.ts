import type { SocketBridge as Bridge } from "./bridge.js";

export { bridge, bridgeOf } from "./bridge.js";
/** What `bridge()` returns. A type only (an alias, which declaration bundling keeps so): `bridge()` makes one. */
export type SocketBridge<TUser = Express.User> = Bridge<TUser>;
export type { BridgeOptions, NamespaceSelection } from "./options.js";
export type { ChannelAuthorizer } from "./channels.js";
export { memoryFailureLimiter, redisFailureLimiter, type FailureLimiter, type RedisCounterClient } from "./limiter.js";
export type { OriginPolicy } from "./security.js";
export {
  BridgeError,
  type BridgeErrorCode,
  ClusterError,
  ConfigError,
  ENDINGS,
  REFUSALS,
  SESSION_MISSING_REASONS,
  type SessionMissingReason,
  RefusalError,
  type EndCode,
  type RefusalCode,
  type RefusalData,
} from "./errors.js";
export type { AnySocket, BridgeSocketData, PassportLike, SessionMiddleware, UserId } from "./types.js";
