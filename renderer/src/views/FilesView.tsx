// Taildrop in both directions: what is being sent, and what arrived.
import type { AppSnapshot } from '../../../preload/api.ts';
import { Received } from '../components/Received.tsx';
import { Transfers } from '../components/Transfers.tsx';

export function FilesView({ snapshot }: { snapshot: AppSnapshot }) {
  return (
    <div className="stack">
      <Transfers transfers={snapshot.transfers} />
      <Received snapshot={snapshot} />
    </div>
  );
}
