#!/usr/bin/env bash
# ads-fcc111-emt data: O, CO, OH, H on Cu, Pt, Au, Pd(111) under EMT, CO/Pd(111) held out of training.
# 100 frames per system: 60 of 500 K Langevin MD and 40 along 8 relaxation paths rattled by 0.05 Å, from every
# site of the facet in turn with the adsorbate lifted by up to 0.5 Å.
set -euo pipefail
export OMP_NUM_THREADS=1
seed=20
for metal in Cu Pt Au Pd; do
  for ads in O CO OH H; do
    if [ "$metal$ads" = PdCO ]; then continue; fi
    mlff data generate oc20 --metal $metal --facet 111 --adsorbate $ads --frames 100 --relax-fraction 0.4 \
        --relax-paths 8 --relax-sites all --lift 0.5 --rattle 0.05 --seed $seed -o ${ads}_${metal}111.xyz --no-progress
    seed=$((seed + 1))
  done
done
# held out: 100 CO/Pd(111) frames and 32 reference relaxations over all 16 pairs
mlff data generate oc20 --metal Pd --facet 111 --adsorbate CO --frames 100 --relax-fraction 0.25 \
    --relax-paths 5 --rattle 0.05 --seed 90 -o heldout_CO_Pd111.xyz --no-progress
mlff data generate relaxations --metals Cu Pt Au Pd --adsorbates O CO OH H --per-system 2 --seed 91 \
    -o heldout_relaxations.xyz --no-progress
