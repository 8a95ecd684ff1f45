import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { stageName, type JobEvent } from "@unclip/protocol";

/** Terminal progress: one bar per image, showing its current stage and diffusion step. */
export class RenderProgress {
  private readonly multibar: MultiBar;
  private readonly bars = new Map<number, SingleBar>();
  private stopped = false;

  constructor(private readonly enabled = process.stderr.isTTY === true) {
    this.multibar = new MultiBar(
      { format: " image {index} | {bar} | {stage} {value}/{total}", hideCursor: true, clearOnComplete: false, stream: process.stderr },
      Presets.shades_classic,
    );
  }

  update(event: JobEvent): void {
    if (!this.enabled || this.stopped) return;
    const e = event.event;
    if (e.case === "stageStarted") this.bar(e.value.index).update(0, { stage: stageName(e.value.stage) });
    else if (e.case === "step")
      (this.bar(e.value.index).setTotal(e.value.total), this.bar(e.value.index).update(e.value.step, { stage: stageName(e.value.stage) }));
    else if (e.case === "stageFinished" && e.value.timing) {
      const bar = this.bar(e.value.timing.index);
      bar.update(bar.getTotal(), { stage: `${stageName(e.value.timing.stage)} done` });
    }
  }

  stop(): void {
    // Without bars (no terminal) there is nothing to stop, and MultiBar.stop would still write a newline.
    if (this.bars.size > 0 && !this.stopped) this.multibar.stop();
    this.stopped = true;
  }

  private bar(index: number): SingleBar {
    let bar = this.bars.get(index);
    if (!bar) {
      bar = this.multibar.create(1, 0, { index, stage: "queued" });
      this.bars.set(index, bar);
    }
    return bar;
  }
}
