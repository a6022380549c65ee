// The subset of Tailscale's tailcfg JSON that Trellis reads and writes. Field names are Go's, exactly;
// everything from the network is untrusted and checked where it is used (see netmap.ts).

export interface Hostinfo {
  IPNVersion?: string;
  OS?: string;
  OSVersion?: string;
  Hostname?: string;
  App?: string;
  FrontendLogID?: string;
  BackendLogID?: string;
  Services?: Array<{ Proto: string; Port: number; Description?: string }>;
  NetInfo?: { PreferredDERP?: number; [k: string]: unknown };
  RoutableIPs?: string[];
  [k: string]: unknown;
}

export interface RegisterRequest {
  Version: number;
  NodeKey: string;
  OldNodeKey: string;
  Auth?: { AuthKey?: string };
  Expiry: string;
  Followup: string;
  Hostinfo: Hostinfo;
  Ephemeral?: boolean;
}

export interface RegisterResponse {
  User?: { ID?: number; DisplayName?: string };
  Login?: { LoginName?: string; DisplayName?: string };
  NodeKeyExpired?: boolean;
  MachineAuthorized?: boolean;
  AuthURL?: string;
  Error?: string;
}

export interface MapRequest {
  Version: number;
  KeepAlive: boolean;
  NodeKey: string;
  DiscoKey: string;
  Stream: boolean;
  OmitPeers?: boolean;
  Hostinfo: Hostinfo;
  Endpoints?: string[];
  EndpointTypes?: number[];
}

export interface TailNode {
  ID: number;
  StableID?: string;
  Name?: string;
  User?: number;
  Key?: string;
  KeyExpiry?: string;
  Machine?: string;
  DiscoKey?: string;
  Addresses?: string[];
  AllowedIPs?: string[] | null;
  Endpoints?: string[] | null;
  DERP?: string;
  HomeDERP?: number;
  Hostinfo?: Hostinfo;
  Online?: boolean | null;
  LastSeen?: string | null;
  MachineAuthorized?: boolean;
  Expired?: boolean;
  Tags?: string[];
  PrimaryRoutes?: string[];
  CapMap?: Record<string, unknown[] | null>;
  Cap?: number;
  [k: string]: unknown;
}

export interface PeerChange {
  NodeID: number;
  DERPRegion?: number;
  Cap?: number;
  Endpoints?: string[] | null;
  Key?: string;
  DiscoKey?: string;
  Online?: boolean;
  LastSeen?: string;
  KeyExpiry?: string;
  CapMap?: Record<string, unknown[] | null>;
}

export interface UserProfile {
  ID: number;
  LoginName?: string;
  DisplayName?: string;
}

export interface DERPNode {
  Name: string;
  RegionID: number;
  HostName: string;
  CertName?: string;
  IPv4?: string;
  IPv6?: string;
  STUNPort?: number;
  STUNOnly?: boolean;
  DERPPort?: number;
  InsecureForTests?: boolean;
}

export interface DERPRegion {
  RegionID: number;
  RegionCode?: string;
  RegionName?: string;
  Avoid?: boolean;
  Nodes?: DERPNode[];
}

export interface DERPMap {
  Regions?: Record<string, DERPRegion | null> | null;
  HomeParams?: unknown;
  omitDefaultRegions?: boolean;
}

/** A DNS resolver; UseWithExitNode keeps it in use while an exit node answers the other names. */
export interface DnsResolver {
  Addr: string;
  UseWithExitNode?: boolean;
}

export interface DNSConfig {
  Resolvers?: DnsResolver[];
  Routes?: Record<string, DnsResolver[] | null>;
  FallbackResolvers?: Array<{ Addr: string }>;
  Domains?: string[];
  Proxied?: boolean;
  ExtraRecords?: Array<{ Name: string; Type?: string; Value: string }>;
  [k: string]: unknown;
}

export interface FilterRule {
  SrcIPs?: string[];
  DstPorts?: Array<{ IP: string; Bits?: number | null; Ports: { First: number; Last: number } }>;
  IPProto?: number[];
  CapGrant?: unknown[];
}

export interface MapResponse {
  KeepAlive?: boolean;
  Node?: TailNode;
  DERPMap?: DERPMap;
  Peers?: TailNode[];
  PeersChanged?: TailNode[];
  PeersRemoved?: number[];
  PeersChangedPatch?: PeerChange[];
  PeerSeenChange?: Record<string, boolean>;
  OnlineChange?: Record<string, boolean>;
  DNSConfig?: DNSConfig;
  Domain?: string;
  CollectServices?: boolean;
  PacketFilter?: FilterRule[] | null;
  PacketFilters?: Record<string, FilterRule[] | null> | null;
  UserProfiles?: UserProfile[];
  ControlTime?: string;
  PingRequest?: unknown;
  [k: string]: unknown;
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';
/** What the Go client sends as Expiry to log out: a time in the past. */
export const LOGOUT_TIME = '1970-01-01T00:02:03Z';
