// The browser side: show the login form, or open the socket and chat.
//
// What the person sees is a short sentence (and "Log in again" when retrying cannot help); what the developer
// needs (the refusal's code, reason and sentence) goes to the console.
//
// `io` is socket.io-client, from /socket.io/socket.io.min.js; `withAuth` is passport-socketio-bridge/client, the
// installed package's dist/client.js as is (a plain ES module with no dependencies), which app.js serves.
import { withAuth } from "/vendor/passport-socketio-bridge/client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// Refusals (auth's "refused", from `connect_error`'s `err.data.code`), as a person would want to read them.
const REFUSED = {
  session_missing: "You are not logged in.",
  unauthenticated: "You are not logged in.",
  user_not_found: "Your account no longer exists.",
  deserialize_failed: "The server could not load your account.",
  store_unavailable: "The server cannot reach its session store right now.",
  rejected: "The server refused the connection.",
  origin_not_allowed: "This page may not connect to the chat.",
  csrf_mismatch: "This page is out of date.",
  too_many_attempts: "Too many connections were refused. Wait a minute.",
  token_invalid: "Your sign-in is no longer valid.",
  token_expired: "Your sign-in expired.",
  server_error: "The server ran into a problem.",
};
// session_missing says why (`reason`).
const SESSION_MISSING = {
  no_cookie: "You are no longer logged in: this browser has forgotten your login.",
  cookie_requires_https: "Your login only works on the secure (https) address of this site.",
  bad_signature: "Your login is no longer valid.",
  unknown_session: "Your session has ended.",
};
// Refusals that mean the login itself is gone: logging out is no longer something to offer.
const LOGIN_GONE = new Set(["session_missing", "unauthenticated", "user_not_found"]);
// Endings (auth's "ended", from `auth:ended` with `{ code }`): the server ended a connection that was working.
const ENDED = {
  logged_out: "You were logged out.",
  session_expired: "Your session expired.",
  user_removed: "Your account was removed.",
  revoked: "You were signed out.",
  token_expired: "Your sign-in expired.",
};

let me;
try {
  const res = await fetch("/api/me", { credentials: "same-origin" });
  // The server's errors are JSON with a sentence for the person (its session store is down, say).
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (body.message) $("unavailable-text").textContent = body.message;
    throw new Error(`HTTP ${res.status}${body.error ? ` (${body.error})` : ""}`);
  }
  me = body.user;
} catch (err) {
  console.warn(`GET /api/me failed: ${err.message}`);
  $("unavailable").hidden = false;
}

if (me === null) {
  $("login").hidden = false;
  $("login-error").hidden = !params.has("error");
  $("username").focus();
} else if (me) {
  $("chat").hidden = false;
  const status = $("status");
  const notice = $("notice");
  const sendButton = $("send-button");
  const input = $("message");
  const messages = $("messages");

  const showNotice = (text, { again = false } = {}) => {
    $("notice-text").textContent = text;
    $("again").hidden = !again;
    notice.hidden = false;
  };
  const hideNotice = () => {
    notice.hidden = true;
    $("again").hidden = true;
  };
  const sendError = (text) => {
    $("send-error").textContent = text;
    $("send-error").hidden = !text;
  };

  // Same origin: the browser sends the session cookie with the handshake by itself.
  // ?transport=polling keeps the connection on long-polling (for proxies that block WebSockets).
  // Created unconnected: withAuth (the library's client half) connects it, retries the refusals a retry can fix
  // (with a backoff: 1 s, doubling up to 30 s), and stops for good on the others and after an ending.
  const socket = io({ autoConnect: false, ...(params.get("transport") === "polling" ? { transports: ["polling"] } : {}) });
  const auth = withAuth(socket);
  window.exampleSocket = socket;
  window.exampleAuth = auth;

  // Send works only while connected: typed text stays in the field meanwhile.
  const connected = (yes) => {
    sendButton.disabled = !yes;
  };
  connected(false);
  // Who is online is not known until connected again.
  const forgetOnline = () => $("online").replaceChildren();

  // "idle", "connecting", "connected", "refused" or "ended".
  let was = auth.state;
  auth.on("state", (state) => {
    connected(state === "connected");
    if (state === "connected") {
      // Connected (again): whatever the notice said is over.
      hideNotice();
      status.textContent = "Connected.";
    } else if (state === "connecting" && was === "connected") {
      forgetOnline();
      status.textContent = "Connection lost, reconnecting…";
    } else if (state === "idle" && was === "connected") {
      // The server disconnected this socket without a word (no ending): nothing reconnects it.
      forgetOnline();
      status.textContent = "Disconnected.";
    }
    was = state;
  });
  // A network error is no refusal: socket.io-client retries by itself (the helper leaves it to it).
  socket.on("connect_error", (err) => {
    if (!socket.active) return; // a refusal: auth's "refused" below
    forgetOnline();
    status.textContent = "Cannot reach the server; trying again…";
    console.info(`Socket.IO: ${err.message}; retrying.`);
  });
  socket.on("hello", ({ name }) => {
    status.textContent = `connected as ${name}`;
  });

  const time = (at) => {
    const el = document.createElement("time");
    const date = new Date(at);
    el.dateTime = date.toISOString();
    el.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return el;
  };
  const addMessage = ({ at, who, text, kind = "chat" }) => {
    // Keep following the conversation, unless the person scrolled up to read.
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 24;
    const item = document.createElement("li");
    item.className = kind;
    const name = document.createElement("strong");
    name.textContent = `${who}: `;
    item.append(time(at), " ", name, text);
    messages.append(item);
    if (atBottom || kind === "sent") messages.scrollTop = messages.scrollHeight;
  };
  socket.on("chat", ({ from, text, at }) => addMessage({ at, who: from, text }));
  socket.on("whisper", ({ from, text, at }) => addMessage({ at, who: `${from} (privately)`, text, kind: "whisper" }));

  socket.on("online", (names) => {
    $("online").replaceChildren(
      ...names.map((name) => {
        const item = document.createElement("li");
        item.textContent = name;
        return item;
      }),
    );
  });

  // A refused handshake, as the server explained it. With reconnect: true (the store is back soon, say) the
  // helper tries again after its backoff, and the notice goes once connected; with false it stops for good.
  auth.on("refused", ({ code, reason, message, reconnect }) => {
    forgetOnline();
    console.warn(`Socket.IO refused the connection: ${code}${reason ? ` (${reason})` : ""}. ${message}`);
    const sentence = (code === "session_missing" && SESSION_MISSING[reason]) || REFUSED[code] || REFUSED.rejected;
    status.textContent = "Not connected.";
    // What the page said before (a message that could not be sent) is no longer the news.
    sendError("");
    if (reconnect) return showNotice(`${sentence} Trying again…`);
    showNotice(sentence, { again: true });
    // "Log out" beside "Log in again" when the login is already gone would do nothing.
    if (LOGIN_GONE.has(code)) $("logout-form").hidden = true;
  });

  // The server ended a connection that was working (logout, expiry...): nothing reconnects it.
  auth.on("ended", ({ code }) => {
    console.info(`The server ended this connection: ${code}.`);
    status.textContent = "Disconnected.";
    showNotice(ENDED[code] ?? "You were disconnected.", { again: true });
    sendError("");
    $("send").hidden = true;
    $("logout-form").hidden = true;
    forgetOnline();
    $("again").focus();
  });

  // The same logout, asked over the socket: the server destroys the session and ends every socket of it, this
  // one included, so "ended" above says "You were logged out." (the HTTP form does it with a page load).
  const socketLogout = $("socket-logout");
  socket.on("connect", () => (socketLogout.disabled = false));
  socket.on("disconnect", () => (socketLogout.disabled = true));
  socketLogout.addEventListener("click", () => socket.emit("logout"));

  auth.connect();

  input.addEventListener("input", () => sendError(""));
  $("send").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!socket.connected) return;
    const text = input.value;
    // "@bob hi" whispers to bob, in all of his tabs.
    const whisper = /^@(\w+)\s+(.+)$/s.exec(text);
    let answer;
    try {
      answer = whisper
        ? await socket.timeout(5000).emitWithAck("whisper", { to: whisper[1], text: whisper[2] })
        : await socket.timeout(5000).emitWithAck("chat", text);
    } catch {
      return sendError("The server did not confirm your message; it may not have been sent.");
    }
    if (!answer?.ok) {
      return sendError(
        answer?.error === "unknown_user" ? `There is no user called “${whisper[1]}”.` : "That message could not be sent.",
      );
    }
    // Sent: the field is cleared (unless more was typed meanwhile), and a whisper is confirmed here.
    if (input.value === text) input.value = "";
    if (whisper) addMessage({ at: answer.at, who: `To ${answer.to} (privately)`, text: whisper[2].trim(), kind: "sent" });
    input.focus();
  });
  input.focus();
}
