/**
 * The example's users, with the Express example app's credentials (the chat page both serve says so):
 * alice / wonderland (an admin) and bob / builder.
 */
import { timingSafeEqual } from "node:crypto";

export interface User {
  id: string;
  username: string;
  name: string;
  role: "admin" | "user";
}

const ACCOUNTS: Array<User & { password: string }> = [
  { id: "1", username: "alice", name: "Alice", role: "admin", password: "wonderland" },
  { id: "2", username: "bob", name: "Bob", role: "user", password: "builder" },
];

export const USERS = new Map<string, User>(ACCOUNTS.map(({ password: _password, ...user }) => [user.id, user]));

export function findByUsername(username: string): User | undefined {
  return [...USERS.values()].find((u) => u.username === username);
}

export function verify(username: string, password: string): User | undefined {
  const account = ACCOUNTS.find((a) => a.username === username);
  if (!account) return undefined;
  // Plain-text passwords keep the example short; a real app stores hashes (the Express example uses scrypt).
  const given = Buffer.from(password);
  const expected = Buffer.from(account.password);
  return given.length === expected.length && timingSafeEqual(given, expected) ? USERS.get(account.id) : undefined;
}
