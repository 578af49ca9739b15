/** The example's users (password = username), as the Express example app has them. */
export interface User {
  id: string;
  username: string;
  name: string;
  role: "admin" | "user";
}

export const USERS = new Map<string, User>(
  [
    { id: "1", username: "alice", name: "Alice", role: "admin" },
    { id: "2", username: "bob", name: "Bob", role: "user" },
  ].map((user) => [user.id, user as User]),
);

export function verify(username: string, password: string): User | undefined {
  const user = [...USERS.values()].find((u) => u.username === username);
  return user && password === username ? user : undefined;
}

