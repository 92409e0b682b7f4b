// Markdown for model output: raw HTML in the text is shown as text, never interpreted, and the
// rendered HTML is sanitized again by DOMPurify. The page's CSP forbids inline script as well.
"use strict";
window.BassiMarkdown = (() => {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escape = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

  window.marked.use({
    gfm: true,
    breaks: true,
    renderer: {
      html(token) {
        const shown = escape(token.text || "");
        return token.block ? `<p>${shown}</p>` : shown;
      },
    },
  });

  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });

  const PURIFY = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe", "video", "audio"],
  };

  return {
    /** Safe HTML for `text`. */
    render(text) {
      return window.DOMPurify.sanitize(window.marked.parse(text, { async: false }), PURIFY);
    },
  };
})();
