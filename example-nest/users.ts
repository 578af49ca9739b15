/** The example's users (password = username), as the Express example app has them. */
export interface User {
  id: string;
  username: string;
  name: string;
}

export const USERS = new Map<string, User>(
  [
    { id: "1", username: "alice", name: "Alice" },
    { id: "2", username: "bob", name: "Bob" },
  ].map((user) => [user.id, user]),
);

export function verify(username: string, password: string): User | undefined {
  const user = [...USERS.values()].find((u) => u.username === username);
  return user && password === username ? user : undefined;
}

