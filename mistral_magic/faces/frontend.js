// mistral-magic's widget front end: the chat panel's message box and the behaviour of
// rendered replies (Copy buttons, following a streaming transcript). anywidget loads this
// module in JupyterLab, Notebook 7, VS Code and Colab, so no script is injected through
// HTML attributes (front ends with strict policies drop those).

const SEND_KEYS = "Message Mistral · Enter sends, Shift+Enter new line";

const stop = (event) => event.stopPropagation();

function messageBox({ model, el }) {
  const box = document.createElement("textarea");
  box.className = "mm-box";
  box.rows = model.get("rows") || 3;
  box.placeholder = model.get("placeholder") || SEND_KEYS;
  box.value = model.get("value") || "";
  box.setAttribute("aria-label", "Message Mistral");
  el.classList.add("mm-input");
  el.appendChild(box);

  const push = () => {
    model.set("value", box.value);
    model.save_changes();
  };
  const onInput = () => push();
  const onKey = (event) => {
    // every key stays in the box: the notebook must not take Shift+Enter (run the cell),
    // Escape (command mode) or single-letter shortcuts typed here
    event.stopPropagation();
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey ||
        event.metaKey || event.isComposing) {
      return;
    }
    event.preventDefault();
    // the text goes with the message: value updates are throttled by the widget manager
    // and a custom message can overtake them. The box empties at once, as this side's
    // newest value, so no update from typing still in flight can bring the text back; the
    // kernel puts back a message it does not send ("restore").
    model.send({ type: "send", text: box.value });
    box.value = "";
    push();
  };
  const onCustom = (message) => {
    if (message && message.type === "restore" && typeof message.text === "string") {
      box.value = message.text;
      push();
    }
  };
  const onChange = () => {
    const value = model.get("value") || "";
    if (box.value !== value) box.value = value;
  };
  const onDisabled = () => { box.disabled = !!model.get("disabled"); };
  box.addEventListener("input", onInput);
  box.addEventListener("keydown", onKey);
  box.addEventListener("keypress", stop);
  model.on("change:value", onChange);
  model.on("change:disabled", onDisabled);
  model.on("msg:custom", onCustom);
  onDisabled();
  return () => {
    box.removeEventListener("input", onInput);
    box.removeEventListener("keydown", onKey);
    box.removeEventListener("keypress", stop);
    model.off("change:value", onChange);
    model.off("change:disabled", onDisabled);
    model.off("msg:custom", onCustom);
  };
}

function copyText(button, text) {
  const done = (label) => {
    button.textContent = label;
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  };
  const fallback = () => {
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
    document.body.removeChild(area);
    done(ok ? "Copied" : "Select the code and copy it");
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => done("Copied"), fallback);
  } else {
    fallback();
  }
}

// Behaviour for everything under the element with class `root`: one listener each, however
// many replies and code blocks arrive later.
function behaviour({ model, el }) {
  el.style.display = "none";
  let root = null;
  let observer = null;
  let frames = 0;
  let frame = 0;
  const onClick = (event) => {
    const button = event.target.closest && event.target.closest("button.mm-copy");
    if (!button || !root.contains(button)) return;
    const source = button.closest(".mm-code")?.querySelector("textarea");
    if (source) copyText(button, source.value);
  };
  const attach = () => {
    root = el.closest("." + model.get("root"));
    if (!root) {
      // the view is rendered before it is placed in the page; wait a bounded while
      if (frames++ < 600) frame = requestAnimationFrame(attach);
      return;
    }
    root.addEventListener("click", onClick);
    const transcript = root.querySelector(".mm-transcript");
    if (transcript && window.MutationObserver) {
      let atBottom = true;
      transcript.addEventListener("scroll", () => {
        atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 24;
      });
      observer = new MutationObserver(() => {
        if (atBottom) transcript.scrollTop = transcript.scrollHeight;
      });
      observer.observe(transcript, { childList: true, subtree: true, characterData: true });
    }
  };
  attach();
  return () => {
    cancelAnimationFrame(frame);
    if (root) root.removeEventListener("click", onClick);
    if (observer) observer.disconnect();
  };
}

export default {
  render({ model, el }) {
    return model.get("kind") === "message_box" ? messageBox({ model, el }) : behaviour({ model, el });
  },
};
