/**
 * What the API may touch: the control facade of src/usernet.ts (status, hubs, ports,
 * leases, flows, captures, counters) and its port forwards, nothing else. Tests hand
 * the API a fake with this shape.
 */
import type { Control, ForwardsFacade } from "../usernet.js";

export interface ApiFacade extends Control {
  readonly forwards: ForwardsFacade;
}
