/**
 * Retransmission timeout estimation (RFC 6298), one per connection.
 *
 * Theory of operation: the first RTT sample R sets SRTT = R and RTTVAR = R/2; each later
 * sample R' sets RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| and then SRTT = 7/8 SRTT + 1/8 R'
 * (RTTVAR first, with the old SRTT, as the RFC orders it). RTO = SRTT + max(G, 4 RTTVAR),
 * clamped to [minRto, maxRto]. Before any sample RTO is `initialRto` (1 s, RFC 6298 §2.1).
 * A timeout doubles RTO (`backoff`, capped at maxRto); the backed-off value stays until
 * the next sample recomputes it (§5.5, §5.7).
 *
 * Deliberately different from the RFC: the lower bound is 200 ms like Linux's
 * TCP_RTO_MIN instead of the RFC's 1 s, since a guest on a virtual LAN answers in
 * microseconds and a 1 s floor would make every loss a one-second stall. The caller
 * decides which samples are valid (Karn's algorithm or timestamps): this module only
 * does arithmetic. Times are milliseconds; G (the clock granularity) defaults to 1 ms.
 */

export interface RtoOptions {
  /** RTO before the first sample (ms); RFC 6298 says 1 s */
  initialRto: number;
  /** lower bound (ms); Linux uses 200, RFC 6298 says 1000 */
  minRto: number;
  /** upper bound (ms); RFC 6298 allows any value of at least 60 s */
  maxRto: number;
  /** clock granularity G (ms) */
  granularity: number;
}

export const rtoDefaults: RtoOptions = Object.freeze({
  initialRto: 1000,
  minRto: 200,
  maxRto: 60_000,
  granularity: 1,
});

export class RtoEstimator {
  /** smoothed RTT (ms), undefined before the first sample */
  srtt: number | undefined;
  /** RTT variation (ms), undefined before the first sample */
  rttvar: number | undefined;
  private current: number;

  constructor(private readonly o: RtoOptions = rtoDefaults) {
    this.current = o.initialRto;
  }

  /** The timeout to arm the retransmission timer with now (ms). */
  get rto(): number {
    return this.current;
  }

  /** Takes one valid RTT measurement (ms) and recomputes RTO (clearing any backoff). */
  sample(r: number): void {
    const rtt = Math.max(0, r);
    if (this.srtt === undefined || this.rttvar === undefined) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rtt);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
    this.current = this.clamp(this.srtt + Math.max(this.o.granularity, 4 * this.rttvar));
  }

  /** The retransmission timer expired: double RTO (RFC 6298 §5.5). */
  backoff(): void {
    this.current = Math.min(this.o.maxRto, this.current * 2);
  }

  private clamp(v: number): number {
    return Math.min(this.o.maxRto, Math.max(this.o.minRto, v));
  }
}
