import { describe, expect, it, vi } from "vitest";
import { whileRunning } from "./hooks";

describe("a bulk run's warning before leaving the tab", () => {
  it("holds while any run lasts, whatever page shows, and goes when the last one ends", async () => {
    const listeners = new Set<unknown>();
    vi.stubGlobal("window", {
      addEventListener: (_type: string, f: unknown) => listeners.add(f),
      removeEventListener: (_type: string, f: unknown) => listeners.delete(f),
    });
    try {
      let finishOne = () => {};
      let finishTwo = () => {};
      const one = whileRunning(() => new Promise<void>((r) => { finishOne = r; }));
      const two = whileRunning(() => new Promise<void>((r) => { finishTwo = r; }));
      expect(listeners.size).toBe(1);
      finishOne();
      await one;
      expect(listeners.size).toBe(1); // the other run still goes on
      finishTwo();
      await two;
      expect(listeners.size).toBe(0);
      // A run that fails lets go too
      await expect(whileRunning(() => Promise.reject(new Error("Immich down")))).rejects.toThrow("Immich down");
      expect(listeners.size).toBe(0);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
