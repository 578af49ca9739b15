// The browser side: show the login form, or open the socket and chat.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const { user } = await (await fetch("/api/me", { credentials: "same-origin" })).json();

if (!user) {
  $("login").hidden = false;
  $("login-error").hidden = !params.has("error");
  $("username").focus();
} else {
  $("chat").hidden = false;
  const status = $("status");
  const notice = $("notice");
  const showNotice = (text) => {
    $("notice-text").textContent = text;
    notice.hidden = false;
  };

  // Same origin: the browser sends the session cookie with the handshake by itself.
  // ?transport=polling keeps the connection on long-polling (for proxies that block WebSockets).
  const socket = io(params.get("transport") === "polling" ? { transports: ["polling"] } : {});
  window.exampleSocket = socket;

  socket.on("hello", ({ name }) => {
    status.textContent = `connected as ${name}`;
  });

  const addMessage = (from, text, whisper = false) => {
    const item = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = whisper ? `${from} (privately): ` : `${from}: `;
    item.append(who, text);
    $("messages").append(item);
  };
  socket.on("chat", ({ from, text }) => addMessage(from, text));
  socket.on("whisper", ({ from, text }) => addMessage(from, text, true));

  socket.on("online", (names) => {
    $("online").replaceChildren(
      ...names.map((name) => {
        const item = document.createElement("li");
        item.textContent = name;
        return item;
      }),
    );
  });

  socket.on("connect_error", (err) => {
    status.textContent = `Not connected: ${err.message}`;
    if (err.data?.code) showNotice(`Refused: ${err.data.code}`);
    // Refusals say whether retrying can help; network errors are retried by the client itself.
    if (err.data?.reconnect) setTimeout(() => socket.connect(), 2000);
  });

  socket.on("auth:ended", ({ code }) => {
    status.textContent = "Disconnected.";
    showNotice(code === "session_expired" ? "Your session expired." : "You were logged out.");
    $("send").hidden = true;
    $("logout-form").hidden = true;
    $("online").replaceChildren();
    $("again").hidden = false;
    $("again").focus();
  });

  socket.on("disconnect", (reason) => {
    if (reason !== "io server disconnect") status.textContent = "Connection lost, reconnecting…";
  });

  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("message");
    // "@bob hi" whispers to bob, in all of his tabs.
    const whisper = /^@(\w+)\s+(.+)$/s.exec(input.value);
    if (whisper) socket.emit("whisper", { to: whisper[1], text: whisper[2] }, () => input.focus());
    else socket.emit("chat", input.value, () => input.focus());
    input.value = "";
  });
  $("message").focus();
}
