//! A small VMM with an emulated IOMMU, twice: an Intel VT-d and an Arm SMMUv3. In each,
//! the guest builds its structures and tables in guest RAM (vm-memory's
//! `GuestMemoryMmap`), a device model does DMA through vm-memory's `IommuMemory` (the
//! unit's translations through `viommu::vmm::IommuBridge`), the guest unmaps the buffer
//! and queues the invalidation, and the device's next DMA gets the architectural fault
//! record. Both scenarios are nested (a guest stage 1 inside the VMM's stage 2).
//!
//! `cargo run -p iommu-pt-viommu --example vmm`

mod smmu;
mod vtd;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("######## Intel VT-d, scalable mode, a nested PASID entry");
    vtd::run()?;
    println!();
    println!("######## Arm SMMUv3, a nested STE with a CD");
    smmu::run()?;
    Ok(())
}
