"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  const token = document.getElementById("token").value;
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  if (response.ok) {
    window.location.href = "/";
    return;
  }
  const data = await response.json().catch(() => null);
  error.textContent = (data && data.error && data.error.message) || `login failed (${response.status})`;
  error.hidden = false;
});
