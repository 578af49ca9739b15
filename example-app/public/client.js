// The browser side: show the login form, or open the socket and chat.
const $ = (id) => document.getElementById(id);

const { user } = await (await fetch("/api/me", { credentials: "same-origin" })).json();

if (!user) {
  $("login").hidden = false;
  $("login-error").hidden = !new URLSearchParams(location.search).has("error");
  $("username").focus();
} else {
  $("chat").hidden = false;
  const status = $("status");
  // Same origin: the browser sends the session cookie with the handshake by itself.
  const socket = io();

  socket.on("hello", ({ name }) => {
    status.textContent = `connected as ${name}`;
  });

  socket.on("chat", ({ from, text }) => {
    const item = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = `${from}: `;
    item.append(who, text);
    $("messages").append(item);
  });

  socket.on("connect_error", (err) => {
    status.textContent = `Not connected: ${err.message} (${err.data?.code ?? "network"})`;
    // Refusals say whether retrying can help; network errors are retried by the client itself.
    if (err.data?.reconnect) setTimeout(() => socket.connect(), 2000);
  });

  socket.on("auth:ended", ({ code }) => {
    status.textContent = code === "logged_out" || code === "revoked" ? "You were logged out." : `Your session ended (${code}).`;
    $("send").hidden = true;
  });

  socket.on("disconnect", (reason) => {
    if (reason !== "io server disconnect") status.textContent = "Connection lost, reconnecting…";
  });

  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("message");
    socket.emit("chat", input.value, () => input.focus());
    input.value = "";
  });
  $("message").focus();
}
