/**
 * Real frames for the codec tests, captured with tcpdump on a veth pair between two
 * network namespaces (Linux 6.18, checksum offload off so checksums are real):
 * 10.99.0.1 (52:54:00:12:34:56) talking to 10.99.0.2 (52:55:0a:63:00:02) with busybox
 * ping, a Python TCP client/server on port 8080 and a UDP datagram to a closed port.
 * veth does not pad to 60 bytes; tests add padding where they need it.
 */
import { hex } from "./arbitraries.js";

/** who-has 10.99.0.2 tell 10.99.0.1 */
export const arpRequest = hex(
  "ffffffffffff 525400123456 0806 0001 0800 06 04 0001 525400123456 0a630001 000000000000 0a630002",
);

/** 10.99.0.2 is-at 52:55:0a:63:00:02 */
export const arpReply = hex(
  "525400123456 52550a630002 0806 0001 0800 06 04 0002 52550a630002 0a630002 525400123456 0a630001",
);

/** busybox ping: echo request id 11975 seq 0, 56 data bytes, DF, id 20779 */
export const icmpEchoRequest = hex(
  "52550a630002 525400123456 0800" +
    "4500 0054 512b 4000 4001 d4b5 0a630001 0a630002" +
    "0800 e9c7 2ec7 0000 1846c72a" +
    "00".repeat(52),
);

/** the kernel's echo reply to it */
export const icmpEchoReply = hex(
  "525400123456 52550a630002 0800" +
    "4500 0054 863e 0000 4001 dfa2 0a630002 0a630001" +
    "0000 f1c7 2ec7 0000 1846c72a" +
    "00".repeat(52),
);

/** Linux SYN: mss 1460, sackOK, TS val 495112692 ecr 0, nop, wscale 10 */
export const tcpSyn = hex(
  "52550a630002 525400123456 0800" +
    "4500 003c f855 4000 4006 2d9e 0a630001 0a630002" +
    "e2aa 1f90 79e4a487 00000000 a002 faf0 2826 0000" +
    "020405b4 0402 080a 1d82d1f4 00000000 01 03030a",
);

/** Linux SYN-ACK: mss 1460, sackOK, TS val 3000711211 ecr 495112692, nop, wscale 10 */
export const tcpSynAck = hex(
  "525400123456 52550a630002 0800" +
    "4500 003c 0000 4000 4006 25f4 0a630002 0a630001" +
    "1f90 e2aa 952e9d57 79e4a488 a012 fe88 06f0 0000" +
    "020405b4 0402 080a b2db382b 1d82d1f4 01 03030a",
);

/** PSH+ACK with "hello" and nop,nop,TS */
export const tcpData = hex(
  "52550a630002 525400123456 0800" +
    "4500 0039 f857 4000 4006 2d9f 0a630001 0a630002" +
    "e2aa 1f90 79e4a488 952e9d58 8018 003f f028 0000" +
    "0101080a 1d82d1f5 b2db382b" +
    "68656c6c6f",
);

/** 10.99.0.1:35410 → 10.99.0.2:9999 "udp payload!" */
export const udpDatagram = hex(
  "52550a630002 525400123456 0800" +
    "4500 0028 7cb6 4000 4011 a946 0a630001 0a630002" +
    "8a52 270f 0014 96c6 756470207061796c6f616421",
);

/** the kernel's port unreachable for it, TOS 0xc0, quoting the whole datagram */
export const icmpPortUnreachable = hex(
  "525400123456 52550a630002 0800" +
    "45c0 0044 8668 0000 4001 dec8 0a630002 0a630001" +
    "0303 11eb 00000000" +
    "4500 0028 7cb6 4000 4011 a946 0a630001 0a630002" +
    "8a52 270f 0014 96c6 756470207061796c6f616421",
);

/** first fragment of a 3000-byte ping: MF, offset 0, 1500 bytes, id 20868 (header only) */
export const firstFragmentHeader = hex("4500 05dc 5184 2000 4001 eed4 0a630001 0a630002");

/** last fragment of it: offset 2960, 68 bytes */
export const lastFragment = hex(`4500 0044 5184 0172 4001 12fb 0a630001 0a630002 ${"00".repeat(48)}`);
