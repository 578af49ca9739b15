/**
 * The command table: what one node asks of every node the adapter reaches (cluster.ts carries them; bridge.ts
 * registers the handlers).
 */
import type { Cluster } from "./cluster.js";
import type { MemberAt, MembersQuery } from "./presence.js";
import type { EndCode } from "./protocol.js";

export type Commands = {
  endSession: (payload: { sessionId: string; code: EndCode }) => number;
  endUser: (payload: { userId: string; code: EndCode }) => number;
  refresh: (userId: string) => Promise<number>;
  renewal: (sessionId: string) => number | null;
  online: (userId: string) => boolean;
  users: () => string[];
  leaveChannel: (payload: { userId: string; channel: string }) => Promise<number>;
  members: (query: MembersQuery) => MemberAt[];
};

export type BridgeCluster = Cluster<Commands>;
