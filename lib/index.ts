export { bridge, bridgeOf, SocketBridge } from "./bridge.js";
export type { BridgeOptions } from "./options.js";
export type { Identity } from "./identity.js";
export type { ChannelAnswer, ChannelAuthorizer, Member } from "./channels.js";
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
export type {
  AnySocket,
  AuthRequest,
  BridgeSocketData,
  PassportLike,
  SessionMiddleware,
  UserId,
} from "./types.js";
