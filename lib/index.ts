export { bridge, bridgeOf } from "./bridge.js";
// A type only: bridge() is the one way to make one.
export type { SocketBridge } from "./bridge.js";
export type { BridgeOptions } from "./options.js";
export type { ChannelAuthorizer } from "./channels.js";
export {
  memoryFailureLimiter,
  redisFailureLimiter,
  type FailureLimiter,
  type OriginPolicy,
  type RedisCounterClient,
} from "./security.js";
export {
  BridgeError,
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
