// The quickstart in strict TypeScript: an Express app with express-session and Passport, and Socket.IO sockets
// that get the same session and the same user through passport-socketio-bridge.
//
//   npm install && npm start     (compiles to dist/, then runs it) then open http://localhost:3000 and log in
//                                as alice / wonderland
//
// (package.json takes the library from this repository, "file:../..": run `npm ci && npm run build` at the
// repository's root first. In a project of your own, `npm install passport-socketio-bridge` instead.)
//
// Or log in with curl (a redirect to / and a session cookie), then use that cookie:
//   curl -i -c cookies.txt -d username=alice -d password=wonderland http://localhost:3000/login
import { createServer } from "node:http";
import express from "express";
import session from "express-session";
import passport from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { Server } from "socket.io";
import { bridge } from "passport-socketio-bridge";

// Your user, declared once: Passport's req.user, and the bridge's socket.request.user, are this type.
declare global {
  namespace Express {
    interface User {
      id: string;
      username: string;
      name: string;
    }
  }
}

// What the server sends to the page.
interface ServerToClientEvents {
  whoami: (username: string) => void;
}

// Your app as it is: users, Passport's local strategy, express-session, a login route.
const users = [{ id: "1", username: "alice", name: "Alice", password: "wonderland" }];
passport.use(new LocalStrategy((username, password, done) =>
  done(null, users.find((u) => u.username === username && u.password === password) ?? false)));
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id: string, done) => done(null, users.find((u) => u.id === id) ?? false));

// express-session's default store, MemoryStore, is fine for a quickstart: it forgets every session on restart
// and is not shared between processes. In production, use a shared store (connect-redis, connect-pg-simple).
const sessionMiddleware = session({
  secret: process.env.SESSION_SECRET ?? "change me",
  resave: false,
  saveUninitialized: false,
});

const app = express();
app.use(express.urlencoded({ extended: false }), sessionMiddleware, passport.session());
app.get("/", (_req, res) => res.type("html").send(page));
app.post("/login", passport.authenticate("local", { successRedirect: "/", failureRedirect: "/?error=login" }));

// The bridge: every socket gets the session and the user of the HTTP requests that share its cookie.
const server = createServer(app);
const io = new Server<{}, ServerToClientEvents>(server);
bridge(io, { session: sessionMiddleware, passport });
io.on("connection", (socket) => {
  // Express.User | undefined: only anonymous sockets (the allowAnonymous option) have none.
  const user = socket.request.user;
  if (!user) return;
  socket.emit("whoami", user.username);
});

const port = Number(process.env.PORT ?? 3000);
server.listen(port, () => console.log(`Quickstart on http://localhost:${port} (log in as alice / wonderland)`));

// The page: a login form, and a socket that shows whose session it carries (the bridge refuses it before login).
const page = `<!doctype html>
<title>passport-socketio-bridge quickstart</title>
<form method="post" action="/login">
  <input name="username" placeholder="alice" required>
  <input name="password" type="password" placeholder="wonderland" required>
  <button>Log in</button>
</form>
<p id="error" hidden>Wrong username or password.</p>
<p id="who">Connecting…</p>
<script src="/socket.io/socket.io.js"></script>
<script>
  document.getElementById("error").hidden = !location.search.includes("error");
  const who = document.getElementById("who");
  const socket = io();
  socket.on("whoami", (username) => (who.textContent = "The socket's user: " + username));
  socket.on("connect_error", (err) => (who.textContent = "The socket was refused: " + err.message));
</script>`;
