/**
 * The virtual network one user stack presents, as numbers the stack uses directly.
 * Defaults follow QEMU/libslirp: 10.0.2.0/24, gateway .2, DNS .3, SMB .4, DHCP from .15.
 */
export interface StackConfig {
  /** network address (uint32) */
  net: number;
  /** netmask (uint32) */
  mask: number;
  /** the gateway, which is also "the host" */
  host: number;
  dns: number;
  /** the SMB server address, answered only when SMB is enabled */
  smb: number | undefined;
  /** further virtual addresses the gateway owns (guestfwd servers) */
  extraAddresses: number[];
  mtu: number;
}

/** libslirp's pattern: 52:55 followed by the IPv4 address the MAC stands for. */
export function virtualMac(addr: number): Buffer {
  const mac = Buffer.alloc(6);
  mac[0] = 0x52;
  mac[1] = 0x55;
  mac.writeUInt32BE(addr >>> 0, 2);
  return mac;
}

/** Every address the gateway answers ARP for. */
export function gatewayAddresses(c: StackConfig): number[] {
  const all = [c.host, c.dns, ...(c.smb === undefined ? [] : [c.smb]), ...c.extraAddresses];
  return [...new Set(all.map((a) => a >>> 0))];
}
