// Types of stack-ports.mjs for the TypeScript tests that import it.
export declare const OFFSETS: { postgres: number; redis: number; s3: number; http: number; https: number };
export declare const DEMO_BASE: number;
export declare const APP_PORTS: { min: number; max: number };
export declare const TEST_CANDIDATES: number[];
export declare const SECOND_CANDIDATES: number[];
export declare const SECOND_STEP: number;
export declare function portsOf(base: number): number[];
export declare function pickBase(candidates: number[], isFree: (port: number) => Promise<boolean>, opts?: { taken?: number[]; stacks?: number; step?: number }): Promise<number | undefined>;
export declare function portFree(port: number): Promise<boolean>;
export declare function runningParts(home: string): Array<{ part: string; pid: number; address: string }>;
export declare function runningBase(home: string): number | undefined;
