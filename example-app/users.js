// The example's user database: two users, passwords kept as scrypt hashes.
import { randomBytes, scryptSync, timingSafeEqual } from "node:crypto";

function hash(password, salt = randomBytes(16)) {
  return { salt, key: scryptSync(password, salt, 32) };
}

const users = new Map(
  [
    { id: "1", username: "alice", name: "Alice", password: "wonderland" },
    { id: "2", username: "bob", name: "Bob", password: "builder" },
  ].map(({ password, ...user }) => [user.id, { ...user, secret: hash(password) }]),
);

/** The public view of a user: what deserializeUser gives Passport, over HTTP and over the socket. */
export function findUserById(id) {
  const user = users.get(String(id));
  return user ? { id: user.id, username: user.username, name: user.name } : null;
}

export function findUserByUsername(username) {
  const user = [...users.values()].find((u) => u.username === username);
  return user ? findUserById(user.id) : null;
}

export function verifyPassword(username, password) {
  const user = [...users.values()].find((u) => u.username === username);
  if (!user || typeof password !== "string") return null;
  const { key } = hash(password, user.secret.salt);
  return timingSafeEqual(key, user.secret.key) ? findUserById(user.id) : null;
}
