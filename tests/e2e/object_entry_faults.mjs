// object_entry.mjs for the fault-injection build (build-faults/, tests/e2e/faults.test.mjs).
import { TenantStore as Deployed } from "../../build-faults/entry.mjs";
import { withDoor } from "./object_door.mjs";

export { default } from "../../build-faults/entry.mjs";

export const TenantStore = withDoor(Deployed);
