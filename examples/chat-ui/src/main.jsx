// A chat page on the AI SDK's useChat that talks to sluice and nothing
// else: sluice holds the key, the prompts and the limits, and keeps each
// answer running when the page goes away, so a reload picks it up again
// (`resume: true`). Stop asks sluice to stop the answer, not only the page
// to stop reading it.
//
// The two lines of transport config: the chat endpoint, and (for Stop) the
// chat's stream endpoint beside it. `?api=` overrides the endpoint.
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";

const api = new URLSearchParams(location.search).get("api") ?? "http://127.0.0.1:7800/v1/ui/chat";

// A chat keeps its id and its messages across reloads (a real app keeps
// them on its server); sluice keeps the answer that is still running.
const chatId = localStorage.getItem("chat-id") ?? crypto.randomUUID();
localStorage.setItem("chat-id", chatId);
const saved = JSON.parse(localStorage.getItem(`chat-${chatId}`) ?? "[]");

function Chat() {
  const { messages, sendMessage, status, stop, error } = useChat({
    id: chatId,
    messages: saved,
    resume: true,
    transport: new DefaultChatTransport({ api, body: { mock: { token_delay_ms: 60 } } }),
  });
  const [input, setInput] = useState("");
  useEffect(() => {
    localStorage.setItem(`chat-${chatId}`, JSON.stringify(messages));
  }, [messages]);

  const stopAnswer = async () => {
    stop();
    await fetch(`${api}/${encodeURIComponent(chatId)}/stream`, { method: "DELETE" });
  };

  return (
    <main>
      <h1>sluice · useChat</h1>
      {messages.map((message) => (
        <div key={message.id} className={`message ${message.role}`} data-role={message.role}>
          {message.parts.map((part, i) =>
            part.type === "text" ? <span key={i}>{part.text}</span>
            : part.type === "reasoning" ? <span key={i} className="reasoning">{part.text}</span>
            : null)}
        </div>
      ))}
      {error && <p className="error">{error.message}</p>}
      <form onSubmit={(e) => { e.preventDefault(); if (input.trim()) { sendMessage({ text: input }); setInput(""); } }}>
        <input value={input} onChange={(e) => setInput(e.target.value)} placeholder="Say something" />
        <button type="submit" disabled={status !== "ready"}>Send</button>
        <button type="button" onClick={stopAnswer} disabled={status !== "streaming" && status !== "submitted"}>Stop</button>
      </form>
      <p id="status">{status}</p>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
