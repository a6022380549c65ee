// A small button that copies a value and says so in a toast.
import type { ReactNode } from 'react';
import { useApi } from '../api/context.ts';
import { attempt } from '../store.ts';

export function CopyButton({ value, label, children }: { value: string; label: string; children?: ReactNode }) {
  const api = useApi();
  return (
    <button
      type="button"
      className="btn btn-small btn-ghost"
      aria-label={label}
      title={label}
      onClick={(e) => {
        e.stopPropagation();
        void attempt(() => api.copyText(value), `Copied ${value}`);
      }}
    >
      {children ?? 'Copy'}
    </button>
  );
}
