import type { EmailMessageRow } from "../db/email-messages";
import { escapeHtml } from "./templates";

/**
 * The development page of the newest emails (GET /dev/messages): when, to whom, the subject and the text
 * body of each. Every value is escaped: subjects and bodies carry product names and user ids.
 */
export function messagesPage(messages: EmailMessageRow[]): string {
  const items = messages
    .map(
      (message) => `<article>
<h2>${escapeHtml(message.subject)}</h2>
<p class="meta"><time datetime="${escapeHtml(message.sentAt)}">${escapeHtml(message.sentAt)}</time> · to ${escapeHtml(message.recipient)} · ${escapeHtml(message.provider)} · ${escapeHtml(message.id)}</p>
<pre>${escapeHtml(message.text)}</pre>
</article>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sent emails (development)</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 48em; margin: 0 auto; padding: 1em; color: #111 }
article { border-top: 1px solid #ccc; padding: 0.5em 0 }
h2 { font-size: 1.05em; margin: 0.25em 0 }
.meta { color: #555; font-size: 0.85em; margin: 0 }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 0.75em }
</style></head>
<body>
<h1>Sent emails</h1>
<p>The newest ${messages.length === 0 ? "" : `${messages.length} `}emails the mailer handed over, newest first. Development only.</p>
${messages.length === 0 ? "<p>No emails yet.</p>" : items}
</body></html>
`;
}
