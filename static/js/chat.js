// The chat page: uploads a screenshot, sends the question over the conversation's
// websocket and renders the answer as it streams (protocol: docs/websocket.md).
// Everything from the server is inserted with textContent, never as HTML, so nothing a
// model writes can run in the page.
"use strict";

(function () {
  const root = document.getElementById("conversation");
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const question = document.getElementById("question");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const errorBanner = document.getElementById("error");
  const fileInput = document.getElementById("file-input");
  const dropzone = document.getElementById("dropzone");
  const preview = document.getElementById("preview");
  const previewImg = document.getElementById("preview-img");

  let conversationId = root.dataset.conversationId || null;
  let socket = null;
  let reconnectDelay = 500;
  let pendingUpload = null; // {id, url, width, height} once uploaded
  let uploading = null; // promise while an upload is in flight
  let streaming = null; // {messageId, bubble, seq, text}
  let asking = null; // {text, upload}: a question sent, until the server accepts or refuses it
  const bubbles = new Map(); // message id -> answer element

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function showError(text) {
    errorBanner.textContent = text;
    errorBanner.hidden = !text;
  }

  // --- rendering -------------------------------------------------------------------------

  function addQuestion(message) {
    const item = document.createElement("li");
    item.className = "message user";
    if (message.upload_id) {
      const figure = document.createElement("figure");
      figure.className = "shot";
      const img = document.createElement("img");
      img.src = `/uploads/${message.upload_id}/image`;
      img.alt = "Screenshot";
      figure.appendChild(img);
      item.appendChild(figure);
    }
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text;
    item.appendChild(text);
    list.appendChild(item);
    return item;
  }

  function addAnswer(message) {
    const item = document.createElement("li");
    item.className = "message assistant";
    item.dataset.messageId = message.id;
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text || "";
    item.appendChild(text);
    const meta = document.createElement("p");
    meta.className = "meta";
    item.appendChild(meta);
    list.appendChild(item);
    bubbles.set(message.id, item);
    setAnswerState(item, message);
    return item;
  }

  function setAnswerState(item, message) {
    const meta = item.querySelector(".meta");
    item.classList.remove("pending", "streaming", "failed", "aborted");
    if (message.status === "pending" || message.status === "streaming") {
      item.classList.add("streaming");
      meta.textContent = "";
    } else if (message.status === "failed") {
      item.classList.add("failed");
      meta.textContent = message.error || "The answer failed.";
    } else if (message.status === "aborted") {
      item.classList.add("aborted");
      meta.textContent = "Stopped.";
    } else {
      meta.textContent = message.engine ? `Answered by ${message.engine}` : "";
    }
    // Feedback controls (static/review/feedback.js) appear once an answer is final.
    item.dispatchEvent(new CustomEvent("answer-state", { bubbles: true, detail: { status: message.status } }));
  }

  function drawBoxes(answerItem, boxes) {
    // Boxes are in pixels of the original screenshot: draw them on the screenshot of
    // the question this answer replies to.
    const questionItem = answerItem.previousElementSibling;
    const figure = questionItem && questionItem.querySelector("figure.shot");
    if (!figure || !boxes.length) return;
    const img = figure.querySelector("img");
    const place = () => {
      figure.querySelectorAll(".box").forEach((el) => el.remove());
      const sx = img.clientWidth / img.naturalWidth;
      const sy = img.clientHeight / img.naturalHeight;
      for (const box of boxes) {
        const el = document.createElement("span");
        el.className = "box";
        el.style.left = `${box.x1 * sx}px`;
        el.style.top = `${box.y1 * sy}px`;
        el.style.width = `${(box.x2 - box.x1) * sx}px`;
        el.style.height = `${(box.y2 - box.y1) * sy}px`;
        if (box.label) el.title = box.label;
        figure.appendChild(el);
      }
    };
    if (img.complete && img.naturalWidth) place();
    else img.addEventListener("load", place, { once: true });
  }

  function renderHistory(messages) {
    list.textContent = "";
    bubbles.clear();
    for (const message of messages) {
      if (message.role === "user") addQuestion(message);
      else {
        const item = addAnswer(message);
        if (message.boxes && message.boxes.length) drawBoxes(item, message.boxes);
        if (message.status === "pending" || message.status === "streaming") {
          streaming = { messageId: message.id, bubble: item, seq: -1, text: message.text || "", boxes: [] };
        }
      }
    }
    setBusy(Boolean(streaming));
    list.scrollTop = list.scrollHeight;
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
  }

  // --- websocket --------------------------------------------------------------------------

  function connect() {
    if (!conversationId) return Promise.resolve();
    return new Promise((resolve) => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws/conversations/${conversationId}/`);
      socket.addEventListener("open", () => {
        reconnectDelay = 500;
        showError("");
        resolve();
      });
      socket.addEventListener("message", (ev) => handleEvent(JSON.parse(ev.data)));
      socket.addEventListener("close", (ev) => {
        resolve();
        if (ev.code === 4401) return showError("Your session has ended. Please log in again.");
        if (ev.code === 4404) return showError("This conversation no longer exists.");
        // Reconnect and catch up from the stored messages: nothing streamed while we were
        // away is lost, it is in the database.
        setTimeout(() => connect().then(resync), reconnectDelay);
        reconnectDelay = Math.min(reconnectDelay * 2, 10000);
      });
    });
  }

  async function resync() {
    if (!conversationId) return;
    const response = await fetch(`/conversations/${conversationId}/messages/`, {
      headers: { Accept: "application/json" },
    });
    if (response.ok) {
      streaming = null;
      asking = null; // accepted or not, the stored history now says which
      renderHistory((await response.json()).messages);
    }
  }

  function handleEvent(event) {
    if (event.type === "accepted") {
      // Only now is the question the server's: clear what was sent from the composer.
      if (asking) {
        if (question.value.trim() === asking.text) question.value = "";
        if (asking.upload && pendingUpload === asking.upload) clearImage();
        asking = null;
      }
      addQuestion(event.question);
      const bubble = addAnswer(event.answer);
      streaming = { messageId: event.message_id, bubble, seq: -1, text: "", boxes: [] };
      setBusy(true);
      return;
    }
    if (event.type === "error" && event.message_id === undefined) {
      // A refused question (moderation, overload, too long...): say why, keep what was
      // typed, and let the person ask again.
      showError(event.message);
      asking = null;
      if (!streaming) setBusy(false);
      return;
    }
    const bubble = bubbles.get(event.message_id);
    if (!bubble) return; // another tab's question: picked up on the next resync
    if (!streaming || streaming.messageId !== event.message_id) {
      streaming = { messageId: event.message_id, bubble, seq: -1, text: "", boxes: [] };
    }
    if (event.seq !== undefined && streaming.seq >= 0 && event.seq !== streaming.seq + 1) {
      // A gap: some events were missed. The final text arrives with "done" anyway; until
      // then show what we have.
      streaming.gap = true;
    }
    if (event.seq !== undefined) streaming.seq = event.seq;
    const text = bubble.querySelector(".text");
    if (event.type === "token") {
      streaming.text += event.text;
      text.textContent = streaming.text;
      list.scrollTop = list.scrollHeight;
    } else if (event.type === "box") {
      streaming.boxes.push(event.box);
      drawBoxes(bubble, streaming.boxes);
    } else if (event.type === "done") {
      text.textContent = event.text;
      setAnswerState(bubble, { status: event.finish_reason === "abort" ? "aborted" : "done", engine: event.engine });
      streaming = null;
      setBusy(false);
    } else if (event.type === "error") {
      setAnswerState(bubble, { status: "failed", error: event.message });
      streaming = null;
      setBusy(false);
    } else if (event.type === "start") {
      setAnswerState(bubble, { status: "streaming" });
    }
  }

  // --- uploads ----------------------------------------------------------------------------

  function clearImage() {
    pendingUpload = null;
    uploading = null;
    preview.hidden = true;
    previewImg.removeAttribute("src");
    fileInput.value = "";
  }

  function chooseImage(file) {
    if (!file) return;
    showError("");
    previewImg.src = URL.createObjectURL(file);
    preview.hidden = false;
    const body = new FormData();
    body.append("image", file);
    pendingUpload = null;
    const attempt = fetch("/uploads/", {
      method: "POST",
      body,
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    })
      .then(async (response) => {
        const data = await response.json().catch(() => ({}));
        if (!response.ok) {
          const message = (data.error && data.error.message) || "The screenshot could not be uploaded.";
          throw new Error(message);
        }
        if (uploading === attempt) pendingUpload = data;
        return data;
      })
      .catch((err) => {
        if (uploading === attempt) clearImage();
        showError(err.message);
        throw err;
      });
    uploading = attempt;
    attempt.catch(() => {});
  }

  document.getElementById("pick-file").addEventListener("click", () => fileInput.click());
  document.getElementById("remove-image").addEventListener("click", clearImage);
  fileInput.addEventListener("change", () => chooseImage(fileInput.files[0]));
  dropzone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    dropzone.classList.add("dragging");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
  dropzone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    dropzone.classList.remove("dragging");
    chooseImage(ev.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (ev) => {
    const item = [...(ev.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
    if (item) {
      ev.preventDefault();
      chooseImage(item.getAsFile());
    }
  });

  // --- asking -----------------------------------------------------------------------------

  async function ensureConversation() {
    if (conversationId) return;
    const response = await fetch("/conversations/", {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || "Could not start a conversation.");
    conversationId = String(data.id);
    root.dataset.conversationId = conversationId;
    history.replaceState(null, "", data.url);
    await connect();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (sendButton.disabled) return; // Enter while an answer or a question is on its way
    const text = question.value.trim();
    if (!text) return showError("Type a question first.");
    showError("");
    sendButton.disabled = true;
    try {
      if (uploading) await uploading;
      await ensureConversation();
      if (!socket || socket.readyState !== WebSocket.OPEN) await connect();
      socket.send(JSON.stringify({ type: "ask", text, upload_id: pendingUpload ? pendingUpload.id : null }));
      asking = { text, upload: pendingUpload };
    } catch (err) {
      showError(err.message || "Something went wrong. Please try again.");
      sendButton.disabled = false;
    }
  });

  question.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  stopButton.addEventListener("click", () => {
    if (streaming && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "stop", message_id: streaming.messageId }));
    }
  });

  document.getElementById("new-chat").addEventListener("click", () => {
    location.href = "/";
  });

  const deleteForm = document.getElementById("delete-form");
  if (deleteForm) {
    deleteForm.addEventListener("submit", (ev) => {
      if (!confirm("Delete this conversation and its screenshots?")) ev.preventDefault();
    });
  }

  renderHistory(JSON.parse(document.getElementById("initial-messages").textContent));
  connect();
})();
