print("dna")
