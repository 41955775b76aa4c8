/**
 * Incremental server-sent-events parser for the chat stream (`event:` + one `data:` JSON line).
 */

export interface ISSEEvent {
  event: string;
  data: any;
}

export class SSEParser {
  private buffer = '';

  /** Feed decoded text; returns the complete events it finished. */
  feed(text: string): ISSEEvent[] {
    this.buffer += text.replace(/\r\n/g, '\n');
    const events: ISSEEvent[] = [];
    let end = this.buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const parsed = parseBlock(block);
      if (parsed) {
        events.push(parsed);
      }
      end = this.buffer.indexOf('\n\n');
    }
    return events;
  }
}

function parseBlock(block: string): ISSEEvent | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) {
      event = line.slice(6).trim();
    } else if (line.startsWith('data:')) {
      data.push(line.slice(5).trimStart());
    }
  }
  if (!data.length) {
    return null;
  }
  try {
    return { event, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}
