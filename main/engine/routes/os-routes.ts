// The OS side of using routes: policy routing for the exit node and accepted subnets, installed as the plan
// says and taken away on down, disconnect, clearing the exit node, and after a crash. What was installed is
// recorded in the state dir before it is installed, so a daemon killed meanwhile undoes it when it starts.
// Linux only for now; elsewhere choosing an exit node or accepting routes is reported as not supported.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bypassMarkWorks } from './bypass-socket.ts';
import { applyLinuxRoutes, type RoutePlan, type Runner, removeLinuxRoutes, runIp } from './linux-router.ts';

const RECORD = 'routes-installed.json';

export class RoutesUnsupportedError extends Error {
  override readonly name = 'RoutesUnsupportedError';
}

export class OsRoutes {
  private installed = false;
  /** One change at a time, in the order asked. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly log: (message: string) => void,
    private readonly run: Runner = runIp,
    private readonly platform: NodeJS.Platform = process.platform,
  ) {}

  /** Routing left installed by a run that did not end cleanly is taken away. */
  recover(): Promise<void> {
    return this.serial(async () => {
      if (!(await this.recorded())) return;
      this.log('routes: removing the exit-node/subnet routing a previous run left installed');
      await removeLinuxRoutes(this.run);
      await rm(join(this.stateDir, RECORD), { force: true });
    });
  }

  /** Installs (or changes, or removes when nothing is routed) the routing for the plan. */
  apply(plan: RoutePlan): Promise<void> {
    return this.serial(async () => {
      const wanted = plan.exitNode || plan.subnets.length > 0;
      if (!wanted) return this.removeNow();
      if (this.platform !== 'linux') {
        throw new RoutesUnsupportedError(`exit nodes and subnet routes are not supported on ${this.platform} yet`);
      }
      if (!bypassMarkWorks()) {
        throw new RoutesUnsupportedError(
          'exit nodes and subnet routes need the native addon and CAP_NET_ADMIN (to mark the engine’s own sockets)',
        );
      }
      if (!this.installed) {
        await writeFile(join(this.stateDir, RECORD), `${JSON.stringify({ table: 52, tun: plan.tunName })}\n`, {
          mode: 0o600,
        });
        this.installed = true;
      }
      await applyLinuxRoutes(plan, this.run);
    });
  }

  /** Takes everything away (down, disconnect, nothing routed any more). */
  remove(): Promise<void> {
    return this.serial(() => this.removeNow());
  }

  private async removeNow(): Promise<void> {
    if (!this.installed && !(await this.recorded())) return;
    await removeLinuxRoutes(this.run);
    await rm(join(this.stateDir, RECORD), { force: true });
    this.installed = false;
  }

  private async recorded(): Promise<boolean> {
    if (this.platform !== 'linux') return false;
    try {
      await readFile(join(this.stateDir, RECORD));
      return true;
    } catch {
      return false;
    }
  }

  private serial(f: () => Promise<void>): Promise<void> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => {});
    return next;
  }
}
